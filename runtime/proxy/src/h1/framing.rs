//! Where an HTTP/1 body ends (RFC 9112 section 6), the chunked decoder, and
//! the strict choices that keep the proxy and its backends agreeing on
//! message boundaries (request smuggling): a request with both
//! Content-Length and Transfer-Encoding, conflicting lengths, or a coding
//! other than `chunked` is refused, as nginx refuses them.

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode, Version};

use crate::message::{HeaderList, RequestHead, ResponseHead, names, trim};

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// The one Content-Length line's value: digits only (spaces around them
/// are trimmed). Like nginx, a repeated line (even with the same value),
/// a list (`5, 5`, `5,`) or an empty value is invalid: RFC 9110 8.6 lets a
/// recipient merge identical values, but a proxy in front that reads an
/// empty line as 0, or the first of two, would disagree with us on where
/// the message ends.
fn content_length(h: &HeaderList) -> Result<Option<u64>, ()> {
    let mut lines = h.get_all(names::CONTENT_LENGTH);
    let Some(v) = lines.next() else {
        return Ok(None);
    };
    if lines.next().is_some() {
        return Err(());
    }
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    // At most 19 digits: fits in a u64.
    Ok(Some(
        v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    ))
}

/// The request body's framing, or the status to refuse the request with.
pub(crate) fn request_framing(h: &RequestHead) -> Result<Framing, StatusCode> {
    let has_te = h.headers.contains(names::TRANSFER_ENCODING);
    if has_te {
        if h.headers.contains(names::CONTENT_LENGTH) || h.version == Version::HTTP_10 {
            return Err(StatusCode::BAD_REQUEST);
        }
        let codings: Vec<&[u8]> = h.headers.tokens(names::TRANSFER_ENCODING).collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            // Not chunked last: the length cannot be known (RFC 9112 6.1).
            [.., last] if !last.eq_ignore_ascii_case(b"chunked") => Err(StatusCode::BAD_REQUEST),
            [] => Err(StatusCode::BAD_REQUEST),
            // gzip, chunked: nginx answers 501 too.
            _ => Err(StatusCode::NOT_IMPLEMENTED),
        };
    }
    match content_length(&h.headers) {
        Ok(Some(0)) | Ok(None) => Ok(Framing::Empty),
        Ok(Some(n)) => Ok(Framing::Length(n)),
        Err(()) => Err(StatusCode::BAD_REQUEST),
    }
}

/// Why an upstream response cannot be relayed (-> 502, as nginx's
/// "upstream sent invalid header").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidResponse(pub &'static str);

/// The framing of an upstream response to a request with `method`.
pub(crate) fn response_framing(
    h: &ResponseHead,
    method: &Method,
) -> Result<Framing, InvalidResponse> {
    let code = h.status.as_u16();
    if method == Method::HEAD || (100..200).contains(&code) || code == 204 || code == 304 {
        return Ok(Framing::Empty);
    }
    if h.headers.contains(names::TRANSFER_ENCODING) {
        if h.headers.contains(names::CONTENT_LENGTH) {
            return Err(InvalidResponse("both Content-Length and Transfer-Encoding"));
        }
        let mut codings = h.headers.tokens(names::TRANSFER_ENCODING).peekable();
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && codings.peek().is_none();
        return if only_chunked {
            Ok(Framing::Chunked)
        } else {
            Err(InvalidResponse("unknown Transfer-Encoding"))
        };
    }
    match content_length(&h.headers) {
        Ok(Some(n)) => Ok(Framing::Length(n)),
        Ok(None) => Ok(Framing::Close),
        Err(()) => Err(InvalidResponse("invalid Content-Length")),
    }
}

/// Longest chunk-size line (with extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// Why a chunked body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    Malformed,
    /// A chunk size takes the body past its limit (-> 413 at once, before
    /// its data is read).
    TooLarge,
}

/// What the decoder found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    Data(Bytes),
    /// The buffer ends mid-frame: read more.
    NeedMore,
    /// The last chunk and the trailers were consumed.
    End,
}

/// Incremental decoder of `Transfer-Encoding: chunked`. Trailers are
/// read and dropped (nginx does not pass them on either).
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Data bytes the chunk sizes may still announce.
    budget: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            budget: u64::MAX,
        }
    }
}

impl ChunkedDecoder {
    /// A decoder that refuses a chunk size taking the data past `max`
    /// bytes as soon as its size line is read (nginx's
    /// client_max_body_size on chunked bodies).
    pub(crate) fn with_limit(max: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            budget: max,
            ..ChunkedDecoder::default()
        }
    }

    /// Consumes framing from the front of `buf` and returns the next piece
    /// of data (split off without copying), `NeedMore` or `End`.
    pub(crate) fn next(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Chunk::End),
                // httparse reads a line without digits (`\r\n`, `;x`) as
                // size 0, the last chunk: a smuggling vector behind another
                // proxy. A chunk line starts with a hex digit.
                State::Size if buf.is_empty() => return Ok(Chunk::NeedMore),
                State::Size if !buf[0].is_ascii_hexdigit() => return Err(ChunkError::Malformed),
                State::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        // httparse lets anything through in extensions; a
                        // bare CR or LF there is read as a line end by some
                        // servers, so it is refused.
                        let line = buf.get(..used.saturating_sub(2)).unwrap_or_default();
                        if used > MAX_CHUNK_LINE || line.iter().any(|b| *b == b'\n' || *b == b'\r')
                        {
                            return Err(ChunkError::Malformed);
                        }
                        if size > self.budget {
                            return Err(ChunkError::TooLarge);
                        }
                        self.budget -= size;
                        buf.advance(used);
                        self.state = if size == 0 {
                            State::Trailers(0)
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err(ChunkError::Malformed)
                        } else {
                            Ok(Chunk::NeedMore)
                        };
                    }
                    Err(_) => return Err(ChunkError::Malformed),
                },
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Chunk::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::Malformed);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                        return if seen + buf.len() > MAX_TRAILERS {
                            Err(ChunkError::Malformed)
                        } else {
                            Ok(Chunk::NeedMore)
                        };
                    };
                    let line = eol + 2;
                    // A bare CR or LF inside a trailer line, as in a chunk
                    // line, is read as a line end by some servers.
                    if seen + line > MAX_TRAILERS
                        || buf[..eol].iter().any(|b| *b == b'\n' || *b == b'\r')
                    {
                        return Err(ChunkError::Malformed);
                    }
                    buf.advance(line);
                    self.state = if eol == 0 {
                        State::Done
                    } else {
                        State::Trailers(seen + line)
                    };
                }
            }
        }
    }
}

/// Appends the chunk-size line for `len` data bytes.
pub(crate) fn chunk_header(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::super::head::{parse_response, response_from};
    use super::*;

    fn req(raw: &str) -> RequestHead {
        crate::h1::head::tests::req(raw.as_bytes())
    }

    fn resp(raw: &str) -> ResponseHead {
        let (len, p) = parse_response(raw.as_bytes())
            .expect("ok")
            .expect("complete");
        response_from(Bytes::copy_from_slice(&raw.as_bytes()[..len]), p)
    }

    #[test]
    fn request_framing_table() {
        let cases: &[(&str, Result<Framing, u16>)] = &[
            ("GET / HTTP/1.1\r\n\r\n", Ok(Framing::Empty)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Ok(Framing::Length(5)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Ok(Framing::Empty),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length:  05 \r\n\r\n",
                Ok(Framing::Length(5)),
            ),
            // Regression: these were accepted; nginx answers 400, and a
            // front proxy reading the empty line as 0 desyncs from us.
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", Err(400)),
            ("POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nContent-Length:\r\nContent-Length: 5\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length:\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Err(400)),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                Err(400),
            ),
            ("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", Err(400)),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Framing::Chunked),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Ok(Framing::Chunked),
            ),
            // Smuggling shapes: refused.
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
                Err(400),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(501),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(501),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(400),
            ),
        ];
        for (raw, want) in cases {
            let got = request_framing(&req(raw)).map_err(|s| s.as_u16());
            assert_eq!(&got, want, "{raw:?}");
        }
    }

    #[test]
    fn response_framing_table() {
        let get = Method::GET;
        let cases: &[(&str, &Method, Result<Framing, ()>)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                &get,
                Ok(Framing::Length(3)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                &Method::HEAD,
                Ok(Framing::Empty),
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", &get, Ok(Framing::Empty)),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                &get,
                Ok(Framing::Empty),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                &get,
                Ok(Framing::Chunked),
            ),
            ("HTTP/1.0 200 OK\r\n\r\n", &get, Ok(Framing::Close)),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                &get,
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                &get,
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                &get,
                Err(()),
            ),
            // The same strictness as for requests (-> 502).
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                &get,
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
                &get,
                Err(()),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length:\r\nContent-Length: 3\r\n\r\n",
                &get,
                Err(()),
            ),
        ];
        for (raw, m, want) in cases {
            let got = response_framing(&resp(raw), m).map_err(|_| ());
            assert_eq!(&got, want, "{raw:?}");
        }
    }

    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.next(&mut buf)? {
                Chunk::Data(b) => out.extend_from_slice(&b),
                Chunk::End => return Ok(out),
                Chunk::NeedMore => {
                    if fed >= input.len() {
                        return Err(ChunkError::Malformed);
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_decoding_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                decode_all(body, step).as_deref(),
                Ok(&b"hello world"[..]),
                "step {step}"
            );
        }
        assert_eq!(decode_all(b"0\r\n\r\n", 1).as_deref(), Ok(&b""[..]));
        assert_eq!(
            decode_all(b"A\r\n0123456789\r\n0\r\n\r\n", 4).map(|v| v.len()),
            Ok(10)
        );
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"zz\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            // No size digits: not a last chunk.
            b"\r\n\r\n",
            b" \r\n\r\n",
            b"\t\r\n\r\n",
            b";x\r\n\r\n",
            b"5\r\nhello\r\n\r\n\r\n",
        ] {
            assert!(
                decode_all(bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert!(decode_all(long.as_bytes(), 512).is_err());
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert!(decode_all(trailers.as_bytes(), 512).is_err());
    }

    #[test]
    fn bare_cr_or_lf_in_a_trailer_is_an_error() {
        // Regression: chunk lines refused a bare CR, trailer lines did not.
        for bad in [
            &b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"[..],
            b"0\r\nX-T: a\r\r\n\r\n",
            b"0\r\nX-T: a\nb\r\n\r\n",
        ] {
            for step in [1, 3, 100] {
                assert_eq!(
                    decode_all(bad, step),
                    Err(ChunkError::Malformed),
                    "{:?} step {step}",
                    String::from_utf8_lossy(bad)
                );
            }
        }
        assert_eq!(
            decode_all(b"0\r\nX-T: a\r\nY: b\r\n\r\n", 1).as_deref(),
            Ok(&b""[..])
        );
    }

    #[test]
    fn chunk_sizes_over_the_limit_are_refused_before_their_data() {
        // Regression: a huge chunk size waited for its data (io_timeout).
        let mut d = ChunkedDecoder::with_limit(10);
        let mut buf = BytesMut::from(&b"fffffff\r\n"[..]);
        assert_eq!(d.next(&mut buf), Err(ChunkError::TooLarge));
        // Sizes add up across chunks; exactly the limit is fine.
        let mut d = ChunkedDecoder::with_limit(10);
        let mut buf = BytesMut::from(&b"6\r\nabcdef\r\n4\r\nghij\r\n1\r\n"[..]);
        let mut got = Vec::new();
        let err = loop {
            match d.next(&mut buf) {
                Ok(Chunk::Data(b)) => got.extend_from_slice(&b),
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            (got.as_slice(), err),
            (&b"abcdefghij"[..], ChunkError::TooLarge)
        );
        let mut d = ChunkedDecoder::with_limit(10);
        let mut buf = BytesMut::from(&b"a\r\n0123456789\r\n0\r\n\r\n"[..]);
        assert!(matches!(d.next(&mut buf), Ok(Chunk::Data(_))));
        assert_eq!(d.next(&mut buf), Ok(Chunk::End));
    }

    /// xorshift64: deterministic pseudo-random bytes for the tests below.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn random_chunked_bodies_round_trip_through_any_split() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..500 {
            let mut wire = Vec::new();
            let mut body = Vec::new();
            for _ in 0..(next() % 6) {
                let n = (next() % 300) as usize + 1;
                let data: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                chunk_header(&mut wire, n);
                if next() % 3 == 0 {
                    // Extensions are allowed and ignored.
                    let at = wire.len() - 2;
                    wire.splice(at..at, b";name=value".iter().copied());
                }
                wire.extend_from_slice(&data);
                wire.extend_from_slice(b"\r\n");
                body.extend_from_slice(&data);
            }
            wire.extend_from_slice(LAST_CHUNK);
            let step = (next() % 17) as usize + 1;
            assert_eq!(decode_all(&wire, step).as_deref(), Ok(&body[..]));
        }
    }

    #[test]
    fn random_bytes_never_panic_the_parsers() {
        let mut next = rng(42);
        let alphabet = b"0123456789abcdefABCDEF;\r\n \t=xX:/GETHTP";
        for _ in 0..20_000 {
            let n = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let _ = decode_all(&bytes, (next() % 5) as usize + 1);
            let _ = super::super::head::parse_request(&bytes);
            let _ = super::super::head::parse_response(&bytes);
            let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n".to_vec();
            req.extend_from_slice(&bytes);
            if let Ok(Some((len, p))) = super::super::head::parse_request(&req) {
                let h = super::super::head::request_from(Bytes::copy_from_slice(&req[..len]), p);
                let _ = request_framing(&h);
            }
        }
    }

    #[test]
    fn chunk_header_hex() {
        let mut v = Vec::new();
        chunk_header(&mut v, 0x1a2b);
        chunk_header(&mut v, 0);
        assert_eq!(v, b"1a2b\r\n0\r\n");
    }
}
