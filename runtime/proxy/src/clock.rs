//! One lazily moved timer per connection for all of its deadlines.
//!
//! A request goes through several timed waits (head, upstream head, body
//! gaps, client writes). A fresh tokio timer per wait costs a timer-wheel
//! insert and removal each time. `Clock` keeps one `Sleep`: a new deadline
//! later than the armed one leaves the timer alone, and when it fires early
//! the wait re-arms it for its real deadline. Under load a connection's
//! timer is touched about once per timeout period, not several times per
//! request.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A deadline that is never reached in practice.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

pub(crate) struct Clock {
    sleep: Pin<Box<Sleep>>,
    /// What `sleep` is set to.
    armed: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        let armed = far();
        Clock {
            sleep: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }
}

/// The wait did not finish by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

impl Clock {
    /// Runs `fut` until it finishes or `deadline` passes.
    pub(crate) async fn run<F: Future>(
        &mut self,
        deadline: Instant,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        if deadline < self.armed {
            self.armed = deadline;
            self.sleep.as_mut().reset(deadline);
        }
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            loop {
                match self.sleep.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if self.armed >= deadline => {
                        // Expired. The next wait re-arms from scratch.
                        self.armed = far();
                        self.sleep.as_mut().reset(self.armed);
                        return Poll::Ready(Err(Elapsed));
                    }
                    Poll::Ready(()) => {
                        // Fired for an earlier, already finished wait.
                        self.armed = deadline;
                        self.sleep.as_mut().reset(deadline);
                    }
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_each_deadline_whatever_was_armed_before() {
        let mut c = Clock::default();
        let t0 = Instant::now();
        // A short wait that finishes leaves its deadline armed...
        let r = c.run(t0 + Duration::from_millis(100), async { 1 }).await;
        assert_eq!(r, Ok(1));
        // ...a longer one must still last its full time.
        let r = c
            .run(
                t0 + Duration::from_millis(500),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        assert_eq!(Instant::now() - t0, Duration::from_millis(500));
        // An earlier deadline after a later one is honoured.
        let t1 = Instant::now();
        let r = c
            .run(t1 + Duration::from_secs(60), async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                2
            })
            .await;
        assert_eq!(r, Ok(2));
        let r = c
            .run(t1 + Duration::from_millis(50), std::future::pending::<()>())
            .await;
        assert_eq!(r, Err(Elapsed));
        assert_eq!(Instant::now() - t1, Duration::from_millis(50));
        // A deadline already past times out at once.
        let r = c.run(Instant::now(), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed));
    }
}
