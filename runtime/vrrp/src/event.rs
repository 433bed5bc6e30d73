//! What the adapter tells an instance.

use crate::packet::Received;

/// An input to [`Instance::handle`](crate::Instance::handle).
///
/// Params reloads are not an event but [`Instance::reload`](crate::Instance::reload),
/// because they can be rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the protocol (Initialize -> Backup, or Master for an owner).
    Startup,
    /// Stop (SIGTERM): a Master sends priority 0 and releases its VIPs so a
    /// backup takes over after Skew_Time instead of Master_Down_Interval.
    Shutdown,
    /// An advert that passed [`decode`](crate::decode) for this instance.
    Advert(Received),
    /// `now` reached [`Instance::next_deadline`](crate::Instance::next_deadline).
    /// Spurious or late wake-ups are harmless: only due timers act.
    TimerExpired,
    /// The instance's aggregate fault condition began: any tracked interface
    /// down, or any weight-0 track script failing. The adapter aggregates.
    LinkDown,
    /// The aggregate fault condition cleared.
    LinkUp,
    /// New effective priority (configured priority plus track-script
    /// weights, computed and clamped by the adapter; 0 is treated as 1).
    PriorityChanged(u8),
}
