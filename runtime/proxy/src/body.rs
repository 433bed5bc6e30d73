//! Body types shared by the proxy and the static handler.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncRead, ReadBuf};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the server writes, and every request body sent
/// upstream.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams `remaining` bytes of an already positioned file.
pub(crate) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

const CHUNK: usize = 64 * 1024;

impl FileBody {
    pub(crate) fn new(file: tokio::fs::File, len: u64) -> FileBody {
        FileBody {
            file,
            remaining: len,
            buf: BytesMut::new(),
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).unwrap_or(CHUNK).min(CHUNK);
        this.buf.resize(want, 0);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // The file shrank under us: end with an error rather than
                    // send fewer bytes than Content-Length promised silently.
                    this.remaining = 0;
                    return Poll::Ready(Some(Err("file truncated while sending".into())));
                }
                this.remaining -= n as u64;
                let chunk = this.buf.split_to(n).freeze();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A body that fails when no frame arrives for `gap`: nginx's
/// `proxy_read_timeout` between two reads of the upstream response, so a
/// backend stalling mid-body cannot pin a client connection forever.
///
/// The timer is armed only when the inner body is actually pending: most
/// small responses arrive with their head and never touch the timer wheel.
pub(crate) struct IdleTimeoutBody<B> {
    inner: B,
    gap: std::time::Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A frame arrived since the timer was armed: re-arm before waiting.
    progressed: bool,
}

impl<B> IdleTimeoutBody<B> {
    pub(crate) fn new(inner: B, gap: std::time::Duration) -> Self {
        IdleTimeoutBody {
            inner,
            gap,
            sleep: None,
            progressed: false,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.progressed = true;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.gap;
                let sleep = match &mut this.sleep {
                    Some(s) => {
                        if this.progressed {
                            s.as_mut().reset(deadline);
                        }
                        s
                    }
                    None => this
                        .sleep
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.progressed = false;
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(
                        "upstream timed out sending the response body".into(),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Called once when a response body is finished or dropped, with the number
/// of body bytes that went out: writes the access log line and metrics.
pub(crate) trait Finish: Send {
    fn finish(self: Box<Self>, body_bytes: u64);
}

/// A response body that counts what it sends and reports when done, like
/// nginx's log phase (which runs after the response, with
/// `$body_bytes_sent`).
pub(crate) struct TrackedBody {
    inner: ProxyBody,
    sent: u64,
    finish: Option<Box<dyn Finish>>,
}

impl TrackedBody {
    pub(crate) fn new(inner: ProxyBody, finish: Box<dyn Finish>) -> TrackedBody {
        TrackedBody {
            inner,
            sent: 0,
            finish: Some(finish),
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(f) = this.finish.take() {
                    f.finish(this.sent);
                }
            }
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            f.finish(self.sent);
        }
    }
}
