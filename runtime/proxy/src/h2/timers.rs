//! The timers of one HTTP/2 connection (nginx's client_header_timeout and
//! keepalive_timeout): a request clock the streams and the socket
//! (`super::io::ClientIo`) update and the connection task reads.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const UNSET: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct ConnTimers {
    /// When the connection was accepted.
    started: Instant,
    /// Requests whose response is not finished yet.
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started`: when the last response finished, and
    /// when the first byte of a not yet complete request head arrived.
    last_done_ms: AtomicU64,
    head_started_ms: AtomicU64,
}

/// What the connection task does when its timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// A request is being served: look again later.
    Busy,
    /// client_header_timeout: the head did not arrive in time; close now.
    Header,
    /// keepalive_timeout: idle between requests; close gracefully.
    Idle,
}

impl ConnTimers {
    /// The timers of a connection accepted at `started`.
    pub(crate) fn new(started: Instant) -> ConnTimers {
        ConnTimers {
            started,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(UNSET),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    // Nothing here wakes the connection task: every deadline these
    // updates can create is at least `min(header, keepalive)` after the
    // update, and the task looks at the state at least that often (see
    // `super::serve`), so no timer is reset per request.

    /// A request head was parsed.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(UNSET, Ordering::SeqCst);
    }

    /// Its response finished (or was abandoned).
    pub(crate) fn request_done(&self) {
        self.last_done_ms.store(self.now_ms(), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Bytes arrived; between requests they start the header clock.
    pub(crate) fn bytes_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self.head_started_ms.load(Ordering::Relaxed) == UNSET
        {
            self.head_started_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    /// A stable "never" so the connection task does not re-arm its timer
    /// on every request.
    fn far(&self) -> Instant {
        self.started + Duration::from_secs(365 * 86_400)
    }

    /// When the next timer fires and what it means then.
    pub(crate) fn next_timer(&self, header: Duration, keepalive: Duration) -> (Instant, Timer) {
        let at = |ms: u64, d: Duration| self.started + Duration::from_millis(ms) + d;
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return (self.far(), Timer::Busy);
        }
        let head = self.head_started_ms.load(Ordering::SeqCst);
        if head != UNSET {
            return (at(head, header), Timer::Header);
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            // nginx: the first request's head is due header_timeout after
            // accept, bytes or not.
            return (at(0, header), Timer::Header);
        }
        if keepalive.is_zero() {
            // hyper closes after the response; nothing to time.
            return (self.far(), Timer::Busy);
        }
        (
            at(self.last_done_ms.load(Ordering::SeqCst), keepalive),
            Timer::Idle,
        )
    }
}
