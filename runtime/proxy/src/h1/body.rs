//! Reading an HTTP/1 body off a connection, by its framing: request bodies
//! from clients and response bodies from upstreams. Pieces are split off
//! the connection's read buffer without copying.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;

use super::framing::{Chunk, ChunkError, ChunkedDecoder, Framing};

/// Bytes asked of the socket per read while a body streams.
const READ_CHUNK: usize = 16 * 1024;

/// Where the reader is in the body.
#[derive(Debug, Clone)]
pub(crate) enum BodyReader {
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until EOF.
    Close,
    Done,
}

/// A body over its limit (a chunk size past `max_body_bytes`).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the body is larger than max_body_bytes")
    }
}

impl std::error::Error for TooLarge {}

/// Whether a body error is [`TooLarge`] (413, not 400).
pub(crate) fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

fn bad_chunk(e: ChunkError) -> io::Error {
    match e {
        ChunkError::TooLarge => io::Error::new(io::ErrorKind::InvalidData, TooLarge),
        ChunkError::Malformed => {
            io::Error::new(io::ErrorKind::InvalidData, "invalid chunked framing")
        }
    }
}

impl BodyReader {
    pub(crate) fn new(f: Framing) -> BodyReader {
        match f {
            Framing::Empty | Framing::Length(0) => BodyReader::Done,
            Framing::Length(n) => BodyReader::Length(n),
            Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::default()),
            Framing::Close => BodyReader::Close,
        }
    }

    /// A request body reader whose chunk sizes may announce at most `max`
    /// bytes in all (0: no limit); Content-Length is checked up front.
    pub(crate) fn request(f: Framing, max: u64) -> BodyReader {
        match f {
            Framing::Chunked if max > 0 => BodyReader::Chunked(ChunkedDecoder::with_limit(max)),
            f => BodyReader::new(f),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, BodyReader::Done)
    }

    /// The next piece that is already in `buf`; `Ok(None)` when more must
    /// be read first or the body is done (see [`is_done`](Self::is_done)).
    pub(crate) fn buffered(&mut self, buf: &mut BytesMut) -> io::Result<Option<Bytes>> {
        match self {
            BodyReader::Done => Ok(None),
            BodyReader::Length(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                let piece = buf.split_to(n).freeze();
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyReader::Done;
                }
                Ok(Some(piece))
            }
            BodyReader::Chunked(d) => match d.next(buf).map_err(bad_chunk)? {
                // Zero-length pieces cannot happen (sizes are > 0).
                Chunk::Data(b) => Ok(Some(b)),
                Chunk::NeedMore => Ok(None),
                Chunk::End => {
                    *self = BodyReader::Done;
                    Ok(None)
                }
            },
            BodyReader::Close => {
                if buf.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(buf.split().freeze()))
                }
            }
        }
    }

    /// The next piece, reading from `io` as needed; `None` at the end. EOF
    /// before the framing says the body ends is an `UnexpectedEof` error.
    pub(crate) fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            if let Some(piece) = self.buffered(buf)? {
                return Poll::Ready(Ok(Some(piece)));
            }
            if self.is_done() {
                return Poll::Ready(Ok(None));
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK);
            }
            let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf))?;
            if n == 0 {
                if matches!(self, BodyReader::Close) {
                    *self = BodyReader::Done;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the body ended",
                )));
            }
        }
    }

    pub(crate) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        buf: &mut BytesMut,
    ) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_next(cx, io, buf)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(f: Framing, wire: &'static [u8], prebuffered: usize) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::from(&wire[..prebuffered]);
        let mut io = &wire[prebuffered..];
        let mut r = BodyReader::new(f);
        let mut out = Vec::new();
        while let Some(p) = r.next(&mut io, &mut buf).await? {
            out.extend_from_slice(&p);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_each_framing() {
        assert_eq!(
            collect(Framing::Length(5), b"helloEXTRA", 2).await.ok(),
            Some(b"hello".to_vec())
        );
        assert_eq!(
            collect(Framing::Close, b"all of it", 3).await.ok(),
            Some(b"all of it".to_vec())
        );
        assert_eq!(
            collect(Framing::Chunked, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5)
                .await
                .ok(),
            Some(b"abcde".to_vec())
        );
        assert_eq!(
            collect(Framing::Empty, b"ignored", 0).await.ok(),
            Some(Vec::new())
        );
    }

    #[tokio::test]
    async fn early_eof_is_an_error() {
        let e = collect(Framing::Length(10), b"short", 0)
            .await
            .expect_err("eof");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = collect(Framing::Chunked, b"5\r\nab", 0)
            .await
            .expect_err("eof");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = collect(Framing::Chunked, b"5\r\nabcdeXX", 0)
            .await
            .expect_err("bad");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn length_leaves_the_next_message_in_the_buffer() {
        let mut buf = BytesMut::from(&b"abcGET / HTTP/1.1\r\n"[..]);
        let mut io: &[u8] = b"";
        let mut r = BodyReader::new(Framing::Length(3));
        assert_eq!(
            r.next(&mut io, &mut buf).await.ok().flatten().as_deref(),
            Some(&b"abc"[..])
        );
        assert!(r.next(&mut io, &mut buf).await.ok().flatten().is_none());
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n");
    }
}
