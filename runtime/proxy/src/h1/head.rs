//! HTTP/1 message heads as they arrive: httparse finds the lines, and the
//! head's bytes plus those offsets become the shared model
//! (`crate::message`), so a proxied head is forwarded by copying header
//! lines, not by building and re-encoding a map.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{Method, StatusCode, Version};

use crate::message::{HeaderList, RequestHead, ResponseHead, Span, to_u32, valid_method};

/// Most header lines a head may have. nginx limits only the size
/// (`large_client_header_buffers`); this bound keeps the parser's scratch
/// array on the stack and is far above what clients send.
pub(crate) const MAX_HEADERS: usize = 256;

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
    let (spans, raw) = parts.spans;
    RequestHead::parsed(parts.method, parts.version, parts.target, bytes, spans, raw)
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
    let (spans, raw) = parts.spans;
    ResponseHead::new(
        parts.status,
        parts.version,
        parts.reason,
        HeaderList::parsed(bytes, spans, raw),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::{Name, names};

    /// A parsed request head (for tests here and in `crate::message`).
    pub(crate) fn req(raw: &[u8]) -> RequestHead {
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
}
