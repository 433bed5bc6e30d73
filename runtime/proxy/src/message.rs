//! The request/response model every part of the proxy shares, whatever
//! the client's protocol: a head's bytes plus the offsets of its lines, so
//! a proxied head is forwarded by copying header lines, not by building
//! and re-encoding a map. HTTP/1 heads are parsed into it (`h1::head`),
//! HTTP/2 requests are converted to it (`HeaderList::from_map`), so
//! routing, logging, static files and the upstream side see one
//! representation.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode, Version};

use crate::wire;

/// `(name start, name end, value start, value end, line end)` in the
/// head's bytes; the line end is past the line's CRLF.
pub(crate) type Span = [u32; 5];

/// Header names the proxy itself looks up. Which of them a head has is
/// recorded once while it is parsed, so asking for an absent one (most
/// lookups) costs no scan of the lines.
const KNOWN: [&str; 17] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "expect",
    "upgrade",
    "authorization",
    "referer",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "range",
    "if-none-match",
    "if-modified-since",
    "if-range",
    "keep-alive",
    "te",
];

/// The bit of a [`KNOWN`] name (any case), or `None`.
fn known_bit(name: &[u8]) -> Option<u32> {
    // By length first: most names are rejected without comparing.
    let candidates: &[usize] = match name.len() {
        2 => &[16],
        4 => &[0],
        5 => &[11],
        6 => &[4],
        7 => &[5, 7],
        8 => &[14],
        10 => &[1, 8, 15],
        13 => &[6, 12],
        14 => &[2],
        15 => &[9],
        17 => &[3, 10, 13],
        _ => &[],
    };
    candidates
        .iter()
        .find(|&&i| name.eq_ignore_ascii_case(KNOWN[i].as_bytes()))
        .map(|&i| 1u32 << i)
}

/// A header name to look up, in lower case, with its [`KNOWN`] bit worked
/// out at compile time (lookups run several times per request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    name: &'static str,
    /// 0 for names outside [`KNOWN`] (always scanned for).
    bit: u32,
}

impl Name {
    pub(crate) const fn new(name: &'static str) -> Name {
        let n = name.as_bytes();
        let mut i = 0;
        while i < KNOWN.len() {
            let k = KNOWN[i].as_bytes();
            if k.len() == n.len() {
                let mut j = 0;
                while j < k.len() && k[j] == n[j] {
                    j += 1;
                }
                if j == k.len() {
                    return Name { name, bit: 1 << i };
                }
            }
            i += 1;
        }
        Name { name, bit: 0 }
    }
}

/// The names the proxy reads.
pub(crate) mod names {
    use super::Name;

    pub(crate) const HOST: Name = Name::new("host");
    pub(crate) const CONNECTION: Name = Name::new("connection");
    pub(crate) const CONTENT_LENGTH: Name = Name::new("content-length");
    pub(crate) const TRANSFER_ENCODING: Name = Name::new("transfer-encoding");
    pub(crate) const EXPECT: Name = Name::new("expect");
    pub(crate) const UPGRADE: Name = Name::new("upgrade");
    pub(crate) const AUTHORIZATION: Name = Name::new("authorization");
    pub(crate) const REFERER: Name = Name::new("referer");
    pub(crate) const USER_AGENT: Name = Name::new("user-agent");
    pub(crate) const X_FORWARDED_FOR: Name = Name::new("x-forwarded-for");
    pub(crate) const X_FORWARDED_PROTO: Name = Name::new("x-forwarded-proto");
    pub(crate) const RANGE: Name = Name::new("range");
    pub(crate) const IF_NONE_MATCH: Name = Name::new("if-none-match");
    pub(crate) const IF_MODIFIED_SINCE: Name = Name::new("if-modified-since");
    pub(crate) const IF_RANGE: Name = Name::new("if-range");
}

/// The header lines of one head, in order, names as sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderList {
    buf: Bytes,
    spans: Vec<Span>,
    /// [`KNOWN`] names present (bit set).
    present: u32,
    /// Every line is `name:value` + CRLF in `buf` (no bare LF), so kept
    /// lines can be forwarded as the bytes that arrived.
    raw_lines: bool,
}

impl HeaderList {
    pub(crate) fn slice(&self, a: u32, b: u32) -> &[u8] {
        self.buf.get(a as usize..b as usize).unwrap_or_default()
    }

    /// Every line as (name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|s| (self.slice(s[0], s[1]), self.slice(s[2], s[3])))
    }

    /// Whether `name` may be present (false only for a known, absent name).
    fn may_have(&self, name: Name) -> bool {
        name.bit == 0 || self.present & name.bit != 0
    }

    /// Values of every line called `name` (ASCII case-insensitive).
    pub(crate) fn get_all(&self, name: Name) -> impl Iterator<Item = &[u8]> + '_ {
        let spans: &[Span] = if self.may_have(name) {
            &self.spans
        } else {
            &[]
        };
        spans
            .iter()
            .map(|s| (self.slice(s[0], s[1]), self.slice(s[2], s[3])))
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: Name) -> Option<&[u8]> {
        if !self.may_have(name) {
            return None;
        }
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of `name` if it is valid UTF-8 (header values are
    /// visible ASCII in practice; obs-text is treated as absent).
    pub(crate) fn get_str(&self, name: Name) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub(crate) fn contains(&self, name: Name) -> bool {
        self.get(name).is_some()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// Comma-separated tokens of every `name` line, trimmed (`Connection`,
    /// `Transfer-Encoding`).
    pub(crate) fn tokens(&self, name: Name) -> impl Iterator<Item = &[u8]> + '_ {
        self.get_all(name)
            .flat_map(|v| v.split(|b| *b == b','))
            .map(trim)
            .filter(|t| !t.is_empty())
    }

    /// Appends every line whose name `keep` accepts, as `Name: value`
    /// CRLF. Runs of consecutive kept lines are copied as the bytes that
    /// arrived, in one piece.
    pub(crate) fn copy_lines(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8]) -> bool) {
        if !self.raw_lines {
            for (n, v) in self.iter() {
                if keep(n) {
                    wire::header(out, n, v);
                }
            }
            return;
        }
        let mut run: Option<(u32, u32)> = None;
        for s in &self.spans {
            if keep(self.slice(s[0], s[1])) {
                run = match run {
                    Some((a, b)) if b == s[0] => Some((a, s[4])),
                    Some((a, b)) => {
                        wire::put(out, self.slice(a, b));
                        Some((s[0], s[4]))
                    }
                    None => Some((s[0], s[4])),
                };
            } else if let Some((a, b)) = run.take() {
                wire::put(out, self.slice(a, b));
            }
        }
        if let Some((a, b)) = run {
            wire::put(out, self.slice(a, b));
        }
    }

    pub(crate) fn has_token(&self, name: Name, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// The lines a parser found in `buf`; `raw_lines`: every line (the
    /// start line too) ends in CRLF, so kept lines can be copied raw.
    #[inline]
    pub(crate) fn parsed(buf: Bytes, spans: Vec<Span>, raw_lines: bool) -> HeaderList {
        HeaderList {
            present: presence(&buf, &spans),
            buf,
            spans,
            raw_lines,
        }
    }

    /// A list built from an `http` map (HTTP/2 requests, tests).
    pub(crate) fn from_map(map: &HeaderMap) -> HeaderList {
        let mut buf = BytesMut::with_capacity(map.len() * 32);
        let mut spans = Vec::with_capacity(map.len());
        for (k, v) in map {
            let n0 = buf.len();
            buf.put_slice(k.as_str().as_bytes());
            let n1 = buf.len();
            buf.put_slice(v.as_bytes());
            let v1 = buf.len();
            spans.push([n0, n1, n1, v1, v1].map(to_u32));
        }
        let buf = buf.freeze();
        let present = presence(&buf, &spans);
        HeaderList {
            buf,
            spans,
            present,
            raw_lines: false,
        }
    }
}

fn presence(buf: &[u8], spans: &[Span]) -> u32 {
    spans
        .iter()
        .filter_map(|s| buf.get(s[0] as usize..s[1] as usize).and_then(known_bit))
        .fold(0, |acc, b| acc | b)
}

pub(crate) fn to_u32(v: usize) -> u32 {
    // Heads are bounded by max_header_bytes, far below 4 GiB.
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

/// HTTP/1.1 keeps a connection open unless `close`; HTTP/1.0 only with
/// `keep-alive`.
fn keep_alive(version: Version, headers: &HeaderList) -> bool {
    if version == Version::HTTP_10 {
        headers.has_token(names::CONNECTION, "keep-alive")
    } else {
        !headers.has_token(names::CONNECTION, "close")
    }
}

/// A request head.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub method: Method,
    pub version: Version,
    target: Target,
    pub headers: HeaderList,
}

/// The request-target, split once: routing, URI replacement, Host and the
/// log all read parts of it.
#[derive(Debug, Clone)]
struct Target {
    /// As sent (origin form `/p?q`, absolute form `http://h/p?q`, or `*`).
    text: String,
    /// Where path-and-query starts (after an absolute form's authority).
    pq: usize,
    /// Where the query starts (after `?`), if there is one.
    query: Option<usize>,
    /// The absolute form's authority.
    authority: Option<(usize, usize)>,
}

impl Target {
    fn new(text: &str) -> Target {
        let (pq, authority) = if text.starts_with('/') || text == "*" {
            (0, None)
        } else if let Some(i) = text.find("://") {
            // absolute-form: scheme://authority[/path][?query]
            let a = i + 3;
            let end = text[a..].find(['/', '?']).map_or(text.len(), |j| a + j);
            (end, (end > a).then_some((a, end)))
        } else {
            (0, None)
        };
        let query = text[pq..].find('?').map(|q| pq + q + 1);
        Target {
            text: text.to_string(),
            pq,
            query,
            authority,
        }
    }
}

/// Whether `m` is a method nginx accepts: upper-case letters, `_` and `-`
/// (RFC 9110 allows any token, `GE!T` and `get` included; nginx answers
/// 400, and a backend that matches methods without regard to case would
/// read `get` as GET past a rule for GET).
pub(crate) fn valid_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
}

impl RequestHead {
    /// A head a parser found in `buf`: the request-target is the
    /// `(start, length)` range `target` of it.
    #[inline]
    pub(crate) fn parsed(
        method: Method,
        version: Version,
        target: (u32, u32),
        buf: Bytes,
        spans: Vec<Span>,
        raw_lines: bool,
    ) -> RequestHead {
        let (t0, tl) = target;
        // httparse accepted only visible ASCII here.
        let text = buf
            .get(t0 as usize..(t0 + tl) as usize)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or("/");
        RequestHead {
            method,
            version,
            target: Target::new(text),
            headers: HeaderList::parsed(buf, spans, raw_lines),
        }
    }

    /// An HTTP/2 (or test) request in the same form.
    pub(crate) fn from_parts(
        method: Method,
        version: Version,
        target: &str,
        headers: &HeaderMap,
    ) -> RequestHead {
        RequestHead {
            method,
            version,
            target: Target::new(target),
            headers: HeaderList::from_map(headers),
        }
    }

    /// The request-target as sent.
    pub(crate) fn target(&self) -> &str {
        &self.target.text
    }

    /// The path (`/` when an absolute form has none).
    pub(crate) fn path(&self) -> &str {
        let t = &self.target;
        let end = t.query.map_or(t.text.len(), |q| q - 1);
        match t.text.get(t.pq..end) {
            Some("") | None => "/",
            Some(p) => p,
        }
    }

    pub(crate) fn query(&self) -> Option<&str> {
        self.target.query.and_then(|q| self.target.text.get(q..))
    }

    /// The authority of an absolute-form target (which overrides Host).
    pub(crate) fn target_authority(&self) -> Option<&str> {
        self.target
            .authority
            .and_then(|(a, b)| self.target.text.get(a..b))
    }

    /// The host the client asked for: absolute-form authority, else Host.
    pub(crate) fn host(&self) -> Option<&str> {
        self.target_authority()
            .or_else(|| self.headers.get_str(names::HOST))
    }

    /// Whether the client wants the connection kept open after this
    /// exchange (HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`).
    pub(crate) fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// A response head from an upstream.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// Where the reason phrase is in `headers.buf`.
    reason: (u32, u32),
    pub headers: HeaderList,
}

impl ResponseHead {
    /// A head from its parts; `reason` is where the reason phrase is in
    /// the bytes of `headers`.
    #[inline]
    pub(crate) fn new(
        status: StatusCode,
        version: Version,
        reason: (u32, u32),
        headers: HeaderList,
    ) -> ResponseHead {
        ResponseHead {
            status,
            version,
            reason,
            headers,
        }
    }

    /// Whether the upstream keeps the connection open after this
    /// response (the same rule as for a request).
    pub(crate) fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }

    /// The reason phrase as sent (may be empty).
    pub(crate) fn reason(&self) -> &str {
        std::str::from_utf8(self.headers.slice(self.reason.0, self.reason.1)).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::head::tests::req;

    #[test]
    fn copy_lines_raw_and_normalized() {
        let r = req(b"GET / HTTP/1.1\r\nA: 1\r\nB:2\r\nDrop: x\r\nC:  3  \r\n\r\n");
        assert!(r.headers.raw_lines);
        let mut out = Vec::new();
        r.headers.copy_lines(&mut out, |n| n != b"Drop");
        // Kept lines go as they arrived (spacing included).
        assert_eq!(out, b"A: 1\r\nB:2\r\nC:  3  \r\n");
        // Bare LF line ends: lines are rewritten, not copied.
        let r = req(b"GET / HTTP/1.1\nA: 1\nB: 2\n\n");
        assert!(!r.headers.raw_lines);
        out.clear();
        r.headers.copy_lines(&mut out, |_| true);
        assert_eq!(out, b"A: 1\r\nB: 2\r\n");
        let r = req(b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n");
        assert!(!r.headers.raw_lines);
        let r = req(b"GET / HTTP/1.1\r\n\r\n");
        out.clear();
        r.headers.copy_lines(&mut out, |_| true);
        assert!(out.is_empty());
    }

    #[test]
    fn known_names_table() {
        for (i, name) in KNOWN.iter().enumerate() {
            assert_eq!(known_bit(name.as_bytes()), Some(1 << i), "{name}");
            assert_eq!(
                known_bit(name.to_ascii_uppercase().as_bytes()),
                Some(1 << i)
            );
        }
        assert_eq!(known_bit(b"x-other"), None);
        let r = req(b"GET / HTTP/1.1\r\nX-Other: 1\r\nUSER-AGENT: u\r\n\r\n");
        assert_eq!(r.headers.get(names::USER_AGENT), Some(&b"u"[..]));
        assert_eq!(r.headers.get(Name::new("x-other")), Some(&b"1"[..]));
        assert_eq!(r.headers.get(names::HOST), None);
        assert_eq!(r.headers.get_all(names::REFERER).count(), 0);
    }

    #[test]
    fn map_round_trip() {
        let mut m = HeaderMap::new();
        m.append("a", "1".parse().expect("v"));
        m.append("a", "2".parse().expect("v"));
        m.insert("b", "3".parse().expect("v"));
        let l = HeaderList::from_map(&m);
        let a: Vec<&[u8]> = l.get_all(Name::new("a")).collect();
        assert_eq!(a, vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(l.get(Name::new("b")), Some(&b"3"[..]));
    }
}
