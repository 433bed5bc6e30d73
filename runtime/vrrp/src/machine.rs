//! The RFC 3768 / 5798 / 9568 state machine for one VRRP instance.
//!
//! Events in, actions out. The instance never reads a clock: every call
//! takes `now`, and the adapter sleeps until [`Instance::next_deadline`].
//! That keeps failover timing testable to the nanosecond with plain
//! `Instant` arithmetic or tokio's paused clock, and keeps the protocol
//! free of the slow work (netlink, hooks) that causes false failovers
//! when it shares a thread with the timer.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;

use crate::action::{Action, Outgoing, Reason, Sender, Transition};
use crate::event::Event;
use crate::packet::{Advert, Expectations, Received};
use crate::params::{InstanceParams, ParamsError};
use crate::state::State;
use crate::timers::{master_down_interval, skew_time};

/// One VRRP instance (one VRID on one interface).
#[derive(Debug, Clone)]
pub struct Instance {
    params: InstanceParams,
    expect: Expectations,
    state: State,
    /// Effective priority: params.priority adjusted by the adapter.
    priority: u8,
    /// Learned from the master's adverts in v3; the local interval in v2.
    master_adver_interval: Duration,
    /// The aggregate fault condition (LinkDown seen, no LinkUp since).
    faulted: bool,
    /// Adver_Timer while Master, Master_Down_Timer while Backup.
    protocol_at: Option<Instant>,
    /// The delayed second GARP burst (garp_master_delay).
    garp_delay_at: Option<Instant>,
    /// The periodic GARP refresh (garp_master_refresh).
    garp_refresh_at: Option<Instant>,
    /// Preemption is held off until this instant (preempt_delay).
    preempt_after: Option<Instant>,
    /// The master we follow while Backup: source and priority of the last
    /// advert accepted as coming from the master.
    current_master: Option<Sender>,
    /// While Backup, why Master_Down_Timer will make us claim if nothing
    /// resets it: the master's priority 0, or a lower-priority master we
    /// preempt. None: plain silence (`MasterDown`).
    claim: Option<(Reason, Sender)>,
    /// Reason and sender of the last transition, for its Notify.
    cause: (Reason, Option<Sender>),
}

impl Instance {
    /// A stopped instance (state Initialize); send `Event::Startup` to run.
    pub fn new(params: InstanceParams) -> Result<Self, ParamsError> {
        params.validate()?;
        Ok(Instance {
            expect: params.expectations(),
            state: State::Initialize,
            priority: params.priority,
            master_adver_interval: params.advert_interval,
            faulted: false,
            protocol_at: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            preempt_after: None,
            current_master: None,
            claim: None,
            cause: (Reason::Startup, None),
            params,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn params(&self) -> &InstanceParams {
        &self.params
    }

    /// What [`decode`](crate::decode) must check for this instance; changes
    /// only on [`reload`](Self::reload).
    pub fn expectations(&self) -> &Expectations {
        &self.expect
    }

    /// Master_Adver_Interval (learned from the master in v3).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Master_Down_Interval at the current priority and learned interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.params.version,
            self.priority,
            self.master_adver_interval,
        )
    }

    /// The address of the master we last accepted an advert from (Backup),
    /// ourselves (Master), or None; for the status page.
    pub fn current_master(&self) -> Option<Ipv4Addr> {
        match self.state {
            State::Master => Some(self.params.primary_ip),
            State::Backup => self.current_master.map(|m| m.address),
            State::Initialize | State::Fault => None,
        }
    }

    /// When the adapter must next call `handle(now, Event::TimerExpired)`;
    /// None when no timer runs (Initialize, Fault). Re-read after every call.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.protocol_at, self.garp_delay_at, self.garp_refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The advert this instance would send now at `priority`.
    pub fn advert(&self, priority: u8) -> Outgoing {
        Outgoing {
            advert: Advert {
                version: self.params.version,
                vrid: self.params.vrid,
                priority,
                interval: self.params.advert_interval,
                addresses: self.params.vips.clone(),
            },
            source: self.params.primary_ip,
            auth: self.params.auth,
            v3_checksum: self.params.v3_checksum,
        }
    }

    /// Feed one event; returns the actions to carry out, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Startup => {
                if self.state == State::Initialize {
                    self.start(now, Reason::Startup, &mut out);
                }
            }
            Event::Shutdown => {
                if self.state != State::Initialize {
                    self.leave_running(now, State::Initialize, Reason::Shutdown, &mut out);
                }
            }
            Event::Advert(rx) => self.on_advert(now, rx, &mut out),
            Event::TimerExpired => self.on_timers(now, &mut out),
            Event::LinkDown => {
                self.faulted = true;
                if matches!(self.state, State::Backup | State::Master) {
                    self.leave_running(now, State::Fault, Reason::Fault, &mut out);
                }
            }
            Event::LinkUp => {
                self.faulted = false;
                if self.state == State::Fault {
                    self.start(now, Reason::FaultCleared, &mut out);
                }
            }
            Event::PriorityChanged(p) => {
                // The new value shows in the next advert (Master) and the
                // next Master_Down_Interval (Backup); RFC timers running now
                // keep their deadlines.
                self.priority = p.max(1);
            }
        }
        out
    }

    /// Apply new params, keeping the state (and mastership) when the VRID
    /// and version are unchanged, so a config reload causes no failover.
    ///
    /// A changed configured priority replaces the effective priority; send
    /// `PriorityChanged` afterwards if track-script weights apply. A changed
    /// VRID or version is another virtual router: the old one stops (priority
    /// 0 if Master) and the new one starts in Backup.
    pub fn reload(
        &mut self,
        now: Instant,
        params: InstanceParams,
    ) -> Result<Vec<Action>, ParamsError> {
        params.validate()?;
        let mut out = Vec::new();
        let old = std::mem::replace(&mut self.params, params);
        self.expect = self.params.expectations();
        if old.priority != self.params.priority {
            self.priority = self.params.priority;
        }

        if old.vrid != self.params.vrid || old.version != self.params.version {
            if self.state != State::Initialize {
                // Stop the old router with the old params' identity.
                let new = std::mem::replace(&mut self.params, old);
                self.leave_running(now, State::Initialize, Reason::Reload, &mut out);
                self.params = new;
                self.master_adver_interval = self.params.advert_interval;
                self.current_master = None;
                self.start(now, Reason::Reload, &mut out);
            }
            return Ok(out);
        }

        if self.params.version == crate::packet::Version::V2 || self.state != State::Backup {
            // v2 masters must use the local interval; v3 keeps what it
            // learned until the next advert.
            self.master_adver_interval = self.params.advert_interval;
        }
        if old.peers != self.params.peers
            && self.current_master.is_some_and(|m| {
                self.expect
                    .sources
                    .as_ref()
                    .is_some_and(|s| !s.contains(&m.address))
            })
        {
            // The master we follow is no longer accepted: forget it, so its
            // priority 0 (were it to reach us) means nothing.
            self.current_master = None;
        }
        if self.state == State::Master {
            let added: Vec<Ipv4Addr> = (self.params.vips.iter())
                .filter(|v| !old.vips.contains(v))
                .copied()
                .collect();
            let removed: Vec<Ipv4Addr> = (old.vips.iter())
                .filter(|v| !self.params.vips.contains(v))
                .copied()
                .collect();
            if !removed.is_empty() {
                out.push(Action::RemoveVips(removed));
            }
            if !added.is_empty() {
                out.push(Action::AddVips(added.clone()));
                self.push_garp(added, self.params.garp.master_repeat, &mut out);
            }
            if old.vips != self.params.vips || old.priority != self.params.priority {
                // Tell backups now, not at the next tick: their address
                // check and preemption decisions depend on it.
                out.push(Action::SendAdvert(self.advert(self.priority)));
            }
            if old.garp.master_refresh != self.params.garp.master_refresh {
                self.garp_refresh_at = self.params.garp.master_refresh.map(|d| now + d);
            }
        }
        Ok(out)
    }

    // ---- transitions ----

    /// From Initialize or Fault: owner -> Master, else Backup, or Fault if
    /// the fault condition holds.
    fn start(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.faulted {
            self.transition(now, State::Fault, reason, None, out);
            out.push(self.notify());
        } else if self.priority == 255 {
            self.become_master(now, reason, None, out);
        } else {
            // Never Master straight away: a booting node that claimed before
            // hearing the real master would run notify_master falsely.
            self.master_adver_interval = self.params.advert_interval;
            self.preempt_after =
                (!self.params.preempt_delay.is_zero()).then(|| now + self.params.preempt_delay);
            self.become_backup(now, reason, None, out);
        }
    }

    fn become_master(
        &mut self,
        now: Instant,
        reason: Reason,
        sender: Option<Sender>,
        out: &mut Vec<Action>,
    ) {
        self.transition(now, State::Master, reason, sender, out);
        // The advert first, so a competing backup stands down at once.
        out.push(Action::SendAdvert(self.advert(self.priority)));
        out.push(Action::AddVips(self.params.vips.clone()));
        self.announce(now, out);
        self.protocol_at = Some(now + self.params.advert_interval);
        self.garp_refresh_at = self.params.garp.master_refresh.map(|d| now + d);
        self.current_master = None;
        self.claim = None;
        out.push(self.notify());
    }

    /// Enter Backup with Master_Down_Timer at the current
    /// Master_Adver_Interval. `sender` is the winner when a Master steps
    /// down, and becomes the master we follow.
    fn become_backup(
        &mut self,
        now: Instant,
        reason: Reason,
        sender: Option<Sender>,
        out: &mut Vec<Action>,
    ) {
        let was_master = self.state == State::Master;
        self.transition(now, State::Backup, reason, sender, out);
        if was_master {
            let winner_known = sender.is_some_and(|s| self.params.peers.is_known(s.address));
            if self.params.garp.lower_prio_announce && winner_known {
                // Stepping down from a split brain: say so with priority 0.
                // If the winner's advert reached us before ours reached it,
                // the winner never heard a lower-priority master and would
                // not re-announce; our priority 0 makes it re-announce (see
                // on_advert), so clients holding our MAC for the VIP move.
                // Only to a known peer: told to a stranger (a forged or
                // colliding advert) it heals nothing, and a backup of ours
                // that reads it as "master stopping" would claim while the
                // stranger is still there (issue 10: the pair flapped).
                out.push(Action::SendAdvert(self.advert(0)));
            }
            out.push(Action::RemoveVips(self.params.vips.clone()));
        }
        self.clear_timers();
        self.current_master = sender;
        self.claim = None;
        self.protocol_at = Some(now + self.master_down_interval());
        out.push(self.notify());
    }

    /// To Initialize (Shutdown, Reload) or Fault (LinkDown): a Master sends
    /// priority 0 so backups claim after Skew_Time, then drops its VIPs.
    fn leave_running(&mut self, now: Instant, to: State, reason: Reason, out: &mut Vec<Action>) {
        let was_master = self.state == State::Master;
        self.transition(now, to, reason, None, out);
        if was_master {
            out.push(Action::SendAdvert(self.advert(0)));
            out.push(Action::RemoveVips(self.params.vips.clone()));
        }
        self.clear_timers();
        self.current_master = None;
        self.claim = None;
        out.push(self.notify());
    }

    fn transition(
        &mut self,
        now: Instant,
        to: State,
        reason: Reason,
        sender: Option<Sender>,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Transition(Transition {
            from: self.state,
            to,
            reason,
            at: now,
            sender,
        }));
        self.state = to;
        self.cause = (reason, sender);
    }

    fn notify(&self) -> Action {
        Action::Notify {
            state: self.state,
            priority: self.priority,
            reason: self.cause.0,
            sender: self.cause.1,
        }
    }

    fn clear_timers(&mut self) {
        self.protocol_at = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
    }

    /// A GARP burst now and the delayed second burst.
    fn announce(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.push_garp(
            self.params.vips.clone(),
            self.params.garp.master_repeat,
            out,
        );
        let delay = self.params.garp.master_delay;
        self.garp_delay_at = (!delay.is_zero()).then(|| now + delay);
    }

    fn push_garp(&self, vips: Vec<Ipv4Addr>, count: u32, out: &mut Vec<Action>) {
        if count > 0 {
            out.push(Action::SendGarp { vips, count });
        }
    }

    fn preempt_allowed(&self, now: Instant) -> bool {
        self.params.preempt && self.preempt_after.is_none_or(|t| now >= t)
    }

    // ---- events ----

    fn on_advert(&mut self, now: Instant, rx: Received, out: &mut Vec<Action>) {
        let adv = &rx.advert;
        let sender = Sender {
            address: rx.source,
            priority: adv.priority,
        };
        if rx.source == self.params.primary_ip
            || adv.vrid != self.params.vrid
            || adv.version != self.params.version
        {
            // Our own multicast looped back, or not decoded for us.
            return;
        }
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => {
                if adv.priority == 0 {
                    // Only the master we follow (or any, before we follow
                    // one) can hand over. A priority 0 from another router
                    // is a former master stepping down to the one we now
                    // follow, which is alive: claiming after Skew_Time
                    // would take the VIP from it, and with three routers
                    // start a chain of step-downs (RFC 5798 does not say
                    // whose priority 0 counts; this is the safe reading).
                    if self.current_master.is_none_or(|m| m.address == rx.source) {
                        // The master is stopping: claim after Skew_Time only.
                        let skew = skew_time(
                            self.params.version,
                            self.priority,
                            self.master_adver_interval,
                        );
                        self.protocol_at = Some(now + skew);
                        self.claim = Some((Reason::PriorityZero, sender));
                    }
                } else if !self.preempt_allowed(now) || adv.priority >= self.priority {
                    self.master_adver_interval = adv.interval;
                    self.current_master = Some(sender);
                    self.claim = None;
                    self.protocol_at = Some(now + self.master_down_interval());
                } else if self.claim.is_none_or(|(r, _)| r != Reason::PriorityZero) {
                    // A lower-priority master and we preempt. Discard, so
                    // Master_Down_Timer expires and we take over.
                    self.claim = Some((Reason::Preempt, sender));
                }
            }
            State::Master => {
                if adv.priority == 0 {
                    // A peer master is stopping: assert ourselves at once so
                    // its backups do not claim after their Skew_Time.
                    out.push(Action::SendAdvert(self.advert(self.priority)));
                    self.protocol_at = Some(now + self.params.advert_interval);
                    if self.params.garp.lower_prio_announce {
                        // It was master while we were too (a split brain
                        // ending): clients may hold its MAC for our VIPs.
                        self.announce(now, out);
                    }
                } else if adv.priority > self.priority
                    || (adv.priority == self.priority && rx.source > self.params.primary_ip)
                {
                    let reason = if adv.priority > self.priority {
                        Reason::HigherPriority
                    } else {
                        Reason::EqualPriorityHigherIp
                    };
                    self.master_adver_interval = adv.interval;
                    self.become_backup(now, reason, Some(sender), out);
                } else if self.params.garp.lower_prio_announce {
                    // We win. The other side believes it is master (split
                    // brain ending, or a backup that could not hear us):
                    // re-announce so it steps down and clients' ARP caches
                    // point at us again.
                    out.push(Action::SendAdvert(self.advert(self.priority)));
                    self.announce(now, out);
                }
            }
        }
    }

    fn on_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.protocol_at.is_some_and(|t| t <= now) {
            match self.state {
                State::Backup => {
                    let (reason, sender) = match self.claim.take() {
                        Some((r, s)) => (r, Some(s)),
                        None => (Reason::MasterDown, self.current_master),
                    };
                    self.become_master(now, reason, sender, out);
                }
                State::Master => {
                    out.push(Action::SendAdvert(self.advert(self.priority)));
                    // From now, not from the missed deadline: after a stall,
                    // one advert, not a catch-up burst.
                    self.protocol_at = Some(now + self.params.advert_interval);
                }
                State::Initialize | State::Fault => self.protocol_at = None,
            }
        }
        if self.state != State::Master {
            return;
        }
        if self.garp_delay_at.is_some_and(|t| t <= now) {
            self.garp_delay_at = None;
            self.push_garp(
                self.params.vips.clone(),
                self.params.garp.master_repeat,
                out,
            );
        }
        if self.garp_refresh_at.is_some_and(|t| t <= now) {
            self.garp_refresh_at = self.params.garp.master_refresh.map(|d| now + d);
            self.push_garp(
                self.params.vips.clone(),
                self.params.garp.master_refresh_repeat,
                out,
            );
        }
    }
}

#[cfg(test)]
mod invariants;
#[cfg(test)]
mod segment;
#[cfg(test)]
mod tests;
