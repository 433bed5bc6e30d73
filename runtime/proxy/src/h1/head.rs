//! HTTP/1 message heads as they arrived: the head's bytes plus the offsets
//! httparse found, so a proxied head is forwarded by copying header lines,
//! not by building and re-encoding a map. HTTP/2 requests are converted to
//! the same form (`HeaderList::from_map`), so routing, logging and the
//! upstream side see one representation.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode, Version};

/// Most header lines a head may have. nginx limits only the size
/// (`large_client_header_buffers`); this bound keeps the parser's scratch
/// array on the stack and is far above what clients send.
pub(crate) const MAX_HEADERS: usize = 256;

/// `(name start, name end, value start, value end, line end)` in the
/// head's bytes; the line end is past the line's CRLF.
type Span = [u32; 5];

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
                    super::write::header(out, n, v);
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
                        super::write::put(out, self.slice(a, b));
                        Some((s[0], s[4]))
                    }
                    None => Some((s[0], s[4])),
                };
            } else if let Some((a, b)) = run.take() {
                super::write::put(out, self.slice(a, b));
            }
        }
        if let Some((a, b)) = run {
            super::write::put(out, self.slice(a, b));
        }
    }

    pub(crate) fn has_token(&self, name: Name, token: &str) -> bool {
        self.tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
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

fn to_u32(v: usize) -> u32 {
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

/// Offset of `part` inside `whole` (both from the same buffer).
fn offset(whole: &[u8], part: &[u8]) -> u32 {
    to_u32((part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize))
}

/// Spans of the parsed lines of the head `buf[..len]`, and whether every
/// line (the start line too) ends in CRLF, so lines can be copied raw.
fn spans_of(buf: &[u8], len: usize, headers: &[httparse::Header<'_>]) -> (Vec<Span>, bool) {
    let crlf = |end: u32| {
        let e = end as usize;
        e >= 2 && buf.get(e - 2..e) == Some(b"\r\n")
    };
    let mut raw = buf.get(len.saturating_sub(2)..len) == Some(b"\r\n");
    let mut spans: Vec<Span> = Vec::with_capacity(headers.len());
    for h in headers {
        let n0 = offset(buf, h.name.as_bytes());
        let v0 = offset(buf, h.value);
        // The previous line ends where this one starts.
        if let Some(prev) = spans.last_mut() {
            prev[4] = n0;
            raw &= n0 > prev[3];
        }
        raw &= crlf(n0);
        spans.push([
            n0,
            n0 + to_u32(h.name.len()),
            v0,
            v0 + to_u32(h.value.len()),
            0,
        ]);
    }
    // The last line ends before the empty line.
    if let Some(last) = spans.last_mut() {
        last[4] = to_u32(len.saturating_sub(2));
        raw &= last[4] > last[3] && crlf(last[4]);
    }
    (spans, raw)
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

/// Why a request head was refused; each maps to the status nginx answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Malformed request line or header line.
    Malformed,
    /// More than `max_header_bytes` or `MAX_HEADERS` lines.
    TooLarge,
    /// HTTP/2 preface or another major version on an HTTP/1 connection.
    Version,
}

impl HeadError {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }
}

fn version(minor: u8) -> Version {
    if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
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

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete.
/// `Ok(Some(len))`: the head is `buf[..len]`; turn it into a
/// [`RequestHead`] with [`request_from`] once those bytes are split off.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Option<(usize, RequestParts)>, HeadError> {
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let cfg = httparse::ParserConfig::default();
    match cfg.parse_request_with_uninit_headers(&mut req, buf, &mut scratch) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version)
            else {
                return Err(HeadError::Malformed);
            };
            if !valid_method(method) {
                return Err(HeadError::Malformed);
            }
            let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed)?;
            Ok(Some((
                len,
                RequestParts {
                    method,
                    version: version(minor),
                    target: (offset(buf, path.as_bytes()), to_u32(path.len())),
                    spans: spans_of(buf, len, req.headers),
                },
            )))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => Err(HeadError::Version),
        Err(_) => Err(HeadError::Malformed),
    }
}

/// A parsed request head whose offsets point into the bytes it was parsed
/// from.
#[derive(Debug)]
pub(crate) struct RequestParts {
    method: Method,
    version: Version,
    target: (u32, u32),
    spans: (Vec<Span>, bool),
}

/// The head from its bytes (exactly the `len` bytes `parse_request` saw).
pub(crate) fn request_from(bytes: Bytes, parts: RequestParts) -> RequestHead {
    let (t0, tl) = parts.target;
    // httparse accepted only visible ASCII here.
    let text = bytes
        .get(t0 as usize..(t0 + tl) as usize)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("/");
    RequestHead {
        method: parts.method,
        version: parts.version,
        target: Target::new(text),
        headers: HeaderList {
            present: presence(&bytes, &parts.spans.0),
            buf: bytes,
            spans: parts.spans.0,
            raw_lines: parts.spans.1,
        },
    }
}

impl RequestHead {
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
        if self.version == Version::HTTP_10 {
            self.headers.has_token(names::CONNECTION, "keep-alive")
        } else {
            !self.headers.has_token(names::CONNECTION, "close")
        }
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
    /// The reason phrase as sent (may be empty).
    pub(crate) fn reason(&self) -> &str {
        std::str::from_utf8(self.headers.slice(self.reason.0, self.reason.1)).unwrap_or("")
    }
}

/// Parses a response head at the start of `buf`; `Ok(None)`: incomplete.
/// The returned length is how many bytes of `buf` the head took.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(usize, ResponseParts)>, HeadError> {
    let mut scratch = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let cfg = httparse::ParserConfig::default();
    match cfg.parse_response_with_uninit_headers(&mut resp, buf, &mut scratch) {
        Ok(httparse::Status::Complete(len)) => {
            let (Some(code), Some(minor)) = (resp.code, resp.version) else {
                return Err(HeadError::Malformed);
            };
            let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed)?;
            Ok(Some((
                len,
                ResponseParts {
                    status,
                    version: version(minor),
                    reason: resp.reason.map_or((0, 0), |r| {
                        let r0 = offset(buf, r.as_bytes());
                        (r0, r0 + to_u32(r.len()))
                    }),
                    spans: spans_of(buf, len, resp.headers),
                },
            )))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Malformed),
    }
}

#[derive(Debug)]
pub(crate) struct ResponseParts {
    status: StatusCode,
    version: Version,
    reason: (u32, u32),
    spans: (Vec<Span>, bool),
}

pub(crate) fn response_from(bytes: Bytes, parts: ResponseParts) -> ResponseHead {
    ResponseHead {
        status: parts.status,
        version: parts.version,
        reason: parts.reason,
        headers: HeaderList {
            present: presence(&bytes, &parts.spans.0),
            buf: bytes,
            spans: parts.spans.0,
            raw_lines: parts.spans.1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &[u8]) -> RequestHead {
        let (len, parts) = parse_request(raw).expect("valid").expect("complete");
        request_from(Bytes::copy_from_slice(&raw[..len]), parts)
    }

    #[test]
    fn request_fields_and_lookup() {
        let r = req(b"GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:80\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nx-two: a\r\nX-Two: b\r\n\r\nbody");
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.version, Version::HTTP_11);
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), Some("x=1"));
        assert_eq!(r.host(), Some("Example.com:80"));
        assert_eq!(r.headers.get(Name::new("x-hop")), Some(&b"1"[..]));
        let two: Vec<&[u8]> = r.headers.get_all(Name::new("x-two")).collect();
        assert_eq!(two, vec![&b"a"[..], &b"b"[..]]);
        assert!(r.headers.has_token(names::CONNECTION, "x-hop"));
        assert!(r.keep_alive());
        assert_eq!(r.headers.len(), 5);
    }

    #[test]
    fn absolute_form_overrides_host() {
        let r = req(b"GET http://a.test:8080/p?q HTTP/1.1\r\nHost: b.test\r\n\r\n");
        assert_eq!(r.host(), Some("a.test:8080"));
        assert_eq!((r.path(), r.query()), ("/p", Some("q")));
        let r = req(b"GET http://a.test HTTP/1.1\r\n\r\n");
        assert_eq!((r.path(), r.query()), ("/", None));
        let r = req(b"GET http://a.test?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!((r.path(), r.query()), ("/", Some("x=1")));
        assert_eq!(r.host(), Some("a.test"));
    }

    #[test]
    fn keep_alive_by_version() {
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    }

    #[test]
    fn incomplete_and_bad_heads() {
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a"),
            Ok(None)
        ));
        assert_eq!(
            parse_request(b"GARBAGE\r\n\r\n").err(),
            Some(HeadError::Malformed)
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nbad header\r\n\r\n").err(),
            Some(HeadError::Malformed)
        );
        // Obsolete line folding is refused, not joined.
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").err(),
            Some(HeadError::Malformed)
        );
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many).err(), Some(HeadError::TooLarge));
        assert_eq!(
            parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").err(),
            Some(HeadError::Version)
        );
    }

    #[test]
    fn methods_outside_nginx_alphabet_are_malformed() {
        // Regression: any RFC 9110 token went upstream (`GE!T`, `get`).
        for bad in ["GE!T", "get", "Get", "GET1", "G.T", "G~T", "G*"] {
            let raw = format!("{bad} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                parse_request(raw.as_bytes()).err(),
                Some(HeadError::Malformed),
                "{bad}"
            );
        }
        for ok in ["GET", "PROPFIND", "FOO_BAR", "F-O", "M-SEARCH"] {
            let raw = format!("{ok} / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(req(raw.as_bytes()).method.as_str(), ok);
        }
    }

    #[test]
    fn response_head() {
        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
        let (len, parts) = parse_response(raw).expect("ok").expect("complete");
        assert_eq!(len, raw.len() - 3);
        let h = response_from(Bytes::copy_from_slice(&raw[..len]), parts);
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        assert_eq!(h.reason(), "Not Found");
        assert_eq!(h.headers.get_str(names::CONTENT_LENGTH), Some("3"));
    }

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
