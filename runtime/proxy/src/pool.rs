//! Upstream connections and their keep-alive pool (nginx's upstream
//! `keepalive`).
//!
//! An upstream connection is a plain socket plus its read buffer, used by
//! one request at a time inside that request's task: no task or channel per
//! connection. Idle connections sit in a per-server LIFO stack. A checkout
//! looks at the socket's readiness, without a system call unless the
//! backend sent something: a connection the backend closed (or wrote junk
//! on) while it was idle is dropped instead of failing the request. A
//! reaper task closes connections idle longer than `idle_timeout`, which is
//! kept below the backends' keep-alive timeout so a reused connection does
//! not race the backend's own close (hyper #3553, caddy #6452).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Read buffers above this size are not kept with an idle connection.
const KEEP_BUF: usize = 16 * 1024;

/// One upstream connection.
#[derive(Debug)]
pub(crate) struct UpConn {
    pub io: TcpStream,
    pub rbuf: BytesMut,
    /// Came from the pool (it served requests before).
    pub reused: bool,
}

impl UpConn {
    pub(crate) fn new(io: TcpStream) -> UpConn {
        UpConn {
            io,
            rbuf: BytesMut::new(),
            reused: false,
        }
    }

    /// Whether an idle connection is still usable: nothing arrived on it
    /// since its last response (no readiness: no system call), or a read
    /// says "would block". EOF, an error or unexpected bytes: not usable.
    fn alive(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut b = [0u8; 1];
                matches!(self.io.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

/// The keep-alive pool of one upstream group, one stack per server.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle", &self.inner.max_idle)
            .finish_non_exhaustive()
    }
}

struct PoolInner {
    servers: Vec<Mutex<Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    reaper_running: AtomicBool,
}

impl PoolInner {
    fn stack(&self, server: usize) -> Option<std::sync::MutexGuard<'_, Vec<Idle>>> {
        // Poison only means a panic elsewhere; a Vec of idle connections
        // is still valid.
        self.servers
            .get(server)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Removes expired connections; the earliest expiry of the rest.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for i in 0..self.servers.len() {
            let Some(mut stack) = self.stack(i) else {
                continue;
            };
            let mut k = 0;
            while k < stack.len() {
                let due = stack[k].since + self.idle_timeout;
                if due <= now {
                    expired.push(stack.remove(k));
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    k += 1;
                }
            }
        }
        // Closed outside the locks.
        drop(expired);
        next
    }
}

/// Closes pooled connections once idle for `idle_timeout`, then exits when
/// the pool is empty or gone (the next checkin starts it again).
async fn reap(pool: Weak<PoolInner>) {
    loop {
        let next = {
            let Some(p) = pool.upgrade() else { return };
            match p.sweep(Instant::now()) {
                Some(n) => n,
                None => {
                    p.reaper_running.store(false, Ordering::Release);
                    // A checkin between the sweep and the store saw the
                    // flag still set: take the job back if so.
                    if p.sweep(Instant::now()).is_none()
                        || p.reaper_running.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                    continue;
                }
            }
        };
        tokio::time::sleep_until(next).await;
    }
}

impl Pool {
    pub(crate) fn new(servers: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                servers: (0..servers).map(|_| Mutex::new(Vec::new())).collect(),
                max_idle,
                idle_timeout,
                reaper_running: AtomicBool::new(false),
            }),
        }
    }

    /// The most recently used idle connection to `server` that is still
    /// open; stale and expired ones are closed on the way.
    pub(crate) fn checkout(&self, server: usize, now: Instant) -> Option<UpConn> {
        loop {
            let idle = self.inner.stack(server)?.pop()?;
            if now.saturating_duration_since(idle.since) >= self.inner.idle_timeout {
                continue;
            }
            let mut conn = idle.conn;
            if conn.alive() {
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose exchange ended cleanly (response read to
    /// its end, nothing left over).
    pub(crate) fn checkin(&self, server: usize, mut conn: UpConn, now: Instant) {
        if self.inner.max_idle == 0 || !conn.rbuf.is_empty() {
            return;
        }
        if conn.rbuf.capacity() > KEEP_BUF {
            conn.rbuf = BytesMut::new();
        }
        let Some(mut stack) = self.inner.stack(server) else {
            return;
        };
        if stack.len() >= self.inner.max_idle {
            // Full: this one closes (after the lock is released).
            drop(stack);
            drop(conn);
            return;
        }
        stack.push(Idle { conn, since: now });
        drop(stack);
        if !self.inner.reaper_running.swap(true, Ordering::AcqRel)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(reap(Arc::downgrade(&self.inner)));
        }
    }

    /// Idle connections per server (status and tests).
    pub(crate) fn idle_counts(&self) -> Vec<usize> {
        (0..self.inner.servers.len())
            .map(|i| self.inner.stack(i).map_or(0, |s| s.len()))
            .collect()
    }
}

/// Opens a connection to `addr` within `timeout`.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<UpConn> {
    let io = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ));
        }
    };
    // Small requests and responses go out at once (nginx sets tcp_nodelay
    // on keep-alive connections too).
    let _ = io.set_nodelay(true);
    Ok(UpConn::new(io))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(l: &TcpListener) -> (UpConn, TcpStream) {
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(connect(addr, Duration::from_secs(5)), l.accept());
        (c.expect("connect"), s.expect("accept").0)
    }

    #[tokio::test]
    async fn checkout_skips_closed_and_chatty_connections() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let pool = Pool::new(1, 8, Duration::from_secs(60));
        let (a, a_srv) = pair(&l).await;
        let (b, mut b_srv) = pair(&l).await;
        let (c, _c_srv) = pair(&l).await;
        pool.checkin(0, c, Instant::now());
        pool.checkin(0, b, Instant::now());
        pool.checkin(0, a, Instant::now());
        assert_eq!(pool.idle_counts(), vec![3]);
        // The backend closes `a` and writes junk on `b` while they idle.
        drop(a_srv);
        b_srv.write_all(b"junk").await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = pool.checkout(0, Instant::now()).expect("the open one");
        assert!(got.reused);
        assert_eq!(pool.idle_counts(), vec![0]);
        assert!(pool.checkout(0, Instant::now()).is_none());
    }

    #[tokio::test]
    async fn reaper_closes_connections_idle_past_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (a, mut a_srv) = pair(&l).await;
        let (b, _b_srv) = pair(&l).await;
        let (c, _c_srv) = pair(&l).await;
        // Sockets first, then virtual time: connects are real I/O.
        tokio::time::pause();
        let pool = Pool::new(2, 8, Duration::from_secs(4));
        pool.checkin(0, a, Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        pool.checkin(1, b, Instant::now());
        assert_eq!(pool.idle_counts(), vec![1, 1]);
        // `a` expires at 4 s, `b` at 6 s; the reaper wakes for each.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(pool.idle_counts(), vec![0, 1]);
        // The reaper really closed the socket: the backend reads EOF.
        let mut buf = [0u8; 8];
        let n = tokio::io::AsyncReadExt::read(&mut a_srv, &mut buf)
            .await
            .expect("read");
        assert_eq!(n, 0);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pool.idle_counts(), vec![0, 0]);
        assert!(pool.checkout(1, Instant::now()).is_none());
        // Once empty the reaper stops; a new checkin starts it again.
        assert!(!pool.inner.reaper_running.load(Ordering::Acquire));
        pool.checkin(0, c, Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(pool.idle_counts(), vec![0, 0]);
    }

    #[tokio::test]
    async fn full_stack_and_leftover_bytes_are_not_pooled() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let pool = Pool::new(1, 1, Duration::from_secs(60));
        let (a, _a) = pair(&l).await;
        let (b, _b) = pair(&l).await;
        let (mut c, _c) = pair(&l).await;
        pool.checkin(0, a, Instant::now());
        pool.checkin(0, b, Instant::now());
        assert_eq!(pool.idle_counts(), vec![1]);
        assert!(pool.checkout(0, Instant::now()).is_some());
        c.rbuf.extend_from_slice(b"extra");
        pool.checkin(0, c, Instant::now());
        assert_eq!(pool.idle_counts(), vec![0]);
    }
}
