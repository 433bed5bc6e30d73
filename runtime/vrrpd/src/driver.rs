//! One instance's protocol loop: packets, timers, track inputs and control
//! messages in; the state machine's actions carried out.
//!
//! Runs on the protocol runtime. Nothing here waits on slow work: VIPs and
//! GARPs go to the instance's effect queue, hooks to the worker runtime.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use hadeploy_config::status::VrrpState;
use hadeploy_config::vrrp::Instance as InstanceConfig;
use hadeploy_vrrp::{
    Action, ChecksumForm, Discard, Event, Instance, InstanceParams, Received, Sender, State,
    V3Checksum, Version, decode, peek_priority,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::effects::{Effect, Effects};
use crate::hooks::{HookContext, Hooks};
use crate::socket::VrrpSocket;
use crate::stats::{PeerStatus, Stats};
use crate::strangers::Strangers;
use crate::track::{TrackEffect, effective_priority, script_effect};

/// A received datagram for this instance's VRID.
#[derive(Debug)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

/// What an input watch means for the instance.
#[derive(Debug, Clone, Copy)]
pub enum InputKind {
    /// The instance's interface or a `track_interface`: down means FAULT.
    Link,
    /// A track script with this (effective) weight.
    Script(i32),
}

/// Track inputs: watch channels and what each means.
pub type Inputs = Vec<(watch::Receiver<bool>, InputKind)>;

/// Messages from the supervisor.
#[derive(Debug)]
pub enum Control {
    /// New config for this instance (same name and interface), the params
    /// built from it, and its track inputs.
    Reload(Box<InstanceConfig>, Box<InstanceParams>, Inputs),
    Shutdown,
}

/// Everything a driver owns.
pub struct Driver {
    pub cfg: InstanceConfig,
    pub machine: Instance,
    pub socket: Arc<VrrpSocket>,
    pub destinations: Vec<Ipv4Addr>,
    pub inputs: Inputs,
    pub hooks: Hooks,
    pub effects: Effects,
    pub stats: Stats,
    pub worker: Handle,
    pub script_timeout: Duration,
    /// VIPs a crashed run may have left on the interface are not yet
    /// settled (see `settle_leftovers`).
    pub leftover_vips: bool,
    /// Rate limit of the `unknown_peer` reports.
    pub strangers: Strangers,
}

/// "from 10.0.0.3 (priority 0)" for log lines; empty without a sender.
fn by(sender: Option<Sender>) -> String {
    sender.map_or_else(String::new, |s| {
        format!(" from {} (priority {})", s.address, s.priority)
    })
}

/// Whether a peer sending `theirs` may drop what we send as `ours`: the
/// two VRRPv3 forms differ and neither side negotiates; a peer that
/// verifies only its own form (keepalived 2.x, FRR) drops every advert of
/// ours and becomes MASTER too. We accept both, so only they can be wrong.
fn checksum_clash(ours: V3Checksum, theirs: ChecksumForm) -> bool {
    match theirs {
        ChecksumForm::V2 => false,
        ChecksumForm::V3VrrpOnly => ours == V3Checksum::PseudoHeader,
        ChecksumForm::V3PseudoHeader | ChecksumForm::V3PseudoHeaderMulticastDst => {
            ours == V3Checksum::VrrpOnly
        }
    }
}

fn track_effect(inputs: &Inputs) -> TrackEffect {
    let mut total = TrackEffect::default();
    for (rx, kind) in inputs {
        let good = *rx.borrow();
        let e = match kind {
            InputKind::Link => TrackEffect {
                delta: 0,
                fault: !good,
            },
            InputKind::Script(w) => script_effect(*w, good),
        };
        total.delta += e.delta;
        total.fault |= e.fault;
    }
    total
}

/// Resolves when any input changes; returns the index of a closed input
/// (its sender is gone) so the caller can drop it, else None.
async fn input_changed(inputs: &mut Inputs) -> Option<usize> {
    if inputs.is_empty() {
        return std::future::pending().await;
    }
    let futs = inputs.iter_mut().map(|(rx, _)| Box::pin(rx.changed()));
    let (res, idx, _) = select_all(futs).await;
    res.is_err().then_some(idx)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Runs until `Control::Shutdown` (or the supervisor is gone), then
    /// stops gracefully: priority 0 if master, VIPs removed, STOP hooks run.
    pub async fn run(
        mut self,
        mut packets: mpsc::Receiver<Packet>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let name = self.cfg.name.clone();
        self.stats.instance(&name, |i| {
            i.interface = self.cfg.interface.clone();
            i.vrid = self.cfg.virtual_router_id;
            i.configured_priority = self.cfg.priority;
        });
        // VIPs a crashed run left on the interface are kept for now: if we
        // were the master and systemd restarted us within a second, clients
        // are still being served through them, and removing them at once
        // would open an outage until some backup's Master_Down_Interval
        // ends. They go as soon as another master is heard (or on FAULT /
        // stop); they stay if this run becomes master. See settle_leftovers.
        let mut effect = track_effect(&self.inputs);
        // Fault and priority first, so Startup lands in the right state.
        let now = Instant::now();
        if effect.fault {
            self.apply(now, Event::LinkDown).await;
        }
        let prio = effective_priority(self.cfg.priority, effect.delta);
        if prio != self.machine.priority() {
            self.apply(now, Event::PriorityChanged(prio)).await;
        }
        self.apply(now, Event::Startup).await;
        let mut packets_open = true;

        loop {
            let deadline = self.machine.next_deadline();
            tokio::select! {
                biased;
                msg = control.recv() => match msg {
                    Some(Control::Reload(cfg, params, inputs)) => {
                        self.reload(*cfg, *params, inputs).await;
                        effect = self.retrack(effect).await;
                    }
                    Some(Control::Shutdown) | None => break,
                },
                // Timers before packets, so a packet flood cannot starve the
                // advert timer; but packets already queued when it fires go
                // first, so an advert arriving with the Master_Down deadline
                // still counts.
                _ = sleep_until(deadline) => {
                    while let Ok(p) = packets.try_recv() {
                        self.on_packet(p).await;
                    }
                    self.apply(Instant::now(), Event::TimerExpired).await;
                }
                p = packets.recv(), if packets_open => match p {
                    Some(p) => self.on_packet(p).await,
                    None => packets_open = false,
                },
                closed = input_changed(&mut self.inputs) => {
                    if let Some(idx) = closed {
                        self.inputs.swap_remove(idx);
                    }
                    effect = self.retrack(effect).await;
                }
            }
        }
        self.stop().await;
    }

    async fn retrack(&mut self, before: TrackEffect) -> TrackEffect {
        let now_effect = track_effect(&self.inputs);
        let now = Instant::now();
        if now_effect.delta != before.delta {
            let p = effective_priority(self.cfg.priority, now_effect.delta);
            tracing::info!(instance = %self.cfg.name, priority = p,
                "instance {}: effective priority now {p}", self.cfg.name);
            self.apply(now, Event::PriorityChanged(p)).await;
        }
        if now_effect.fault != before.fault {
            let ev = if now_effect.fault {
                Event::LinkDown
            } else {
                Event::LinkUp
            };
            self.apply(now, ev).await;
        }
        now_effect
    }

    async fn on_packet(&mut self, p: Packet) {
        match decode(p.src, p.dst, p.ttl, &p.payload, self.machine.expectations()) {
            Ok(rx) => {
                self.note_peer(&rx);
                self.apply(Instant::now(), Event::Advert(rx)).await;
            }
            Err(why) => {
                self.stats
                    .instance(&self.cfg.name, |i| *i.discards.entry(why).or_default() += 1);
                if why == Discard::UnknownPeer {
                    self.report_stranger(&p);
                    return;
                }
                // Debug only: a hostile or misconfigured neighbour must not
                // flood the journal; the counter carries the signal.
                tracing::debug!(instance = %self.cfg.name, from = %p.src, reason = why.as_str(),
                    "instance {}: dropped advert from {}: {why}", self.cfg.name, p.src);
            }
        }
    }

    /// Counts an accepted advert per peer, with the checksum form it
    /// verified with (exported: status `peers[]`, metric label), and warns
    /// once per peer and form when that form is not the one we send.
    fn note_peer(&mut self, rx: &Received) {
        let ours = self.machine.params().v3_checksum;
        let version = self.machine.params().version;
        let first_in_form = self.stats.instance(&self.cfg.name, |i| {
            i.adverts_received += 1;
            let e = i.peers.entry(rx.source).or_insert(PeerStatus {
                checksum: rx.checksum,
                priority: rx.advert.priority,
                adverts: 0,
            });
            let changed = e.adverts == 0 || e.checksum != rx.checksum;
            e.checksum = rx.checksum;
            e.priority = rx.advert.priority;
            e.adverts += 1;
            changed
        });
        if first_in_form && version == Version::V3 && checksum_clash(ours, rx.checksum) {
            let ours = match ours {
                V3Checksum::PseudoHeader => "pseudo_header",
                V3Checksum::VrrpOnly => "vrrp_only",
            };
            tracing::warn!(instance = %self.cfg.name, peer = %rx.source, peer_checksum = rx.checksum.as_str(),
                v3_checksum = ours,
                "instance {}: peer {} sends VRRPv3 checksums as {}, we send {ours}: a peer that verifies \
                 only its own form (keepalived 2.x, FRR) drops our adverts and becomes MASTER too; \
                 set v3_checksum to match it", self.cfg.name, rx.source, rx.checksum.as_str());
        }
    }

    /// A rate-limited warning for an advert from a source that is not a
    /// peer: who, for which VRID, with what priority.
    fn report_stranger(&mut self, p: &Packet) {
        let Some(dropped) = self.strangers.note(p.src, Instant::now()) else {
            return;
        };
        let vrid = self.cfg.virtual_router_id;
        let priority = peek_priority(&p.payload).map_or("?".to_string(), |v| v.to_string());
        let known: Vec<String> = (self.machine.params().peers.known.iter())
            .chain(&self.machine.params().peers.also_accept)
            .map(ToString::to_string)
            .collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        let more = if dropped > 0 {
            format!("; {dropped} more from it since the last report")
        } else {
            String::new()
        };
        tracing::warn!(instance = %self.cfg.name, interface = %self.cfg.interface, from = %p.src, vrid,
            priority = %priority, reason = Discard::UnknownPeer.as_str(), dropped,
            "instance {}: discarded an advert from {} (VRID {vrid}, priority {priority}) on {}: not a peer \
             of this virtual router (peers: {known}){more}. A forged advert, or another cluster using \
             VRID {vrid} on this segment; accept_peers / accept_any_peer let a third-party router in",
            self.cfg.name, p.src, self.cfg.interface);
    }

    async fn reload(&mut self, cfg: InstanceConfig, params: InstanceParams, inputs: Inputs) {
        let name = cfg.name.clone();
        let actions = match self.machine.reload(Instant::now(), params) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(instance = %name, error = %e,
                    "instance {name}: reload rejected, keeping the running config: {e}");
                return;
            }
        };
        if cfg.notify != self.cfg.notify {
            let new = Hooks::new(&self.worker, &name, cfg.notify.clone(), self.script_timeout);
            let old = std::mem::replace(&mut self.hooks, new);
            let limit = self.script_timeout * 4;
            self.worker.spawn(old.drain(limit));
        }
        self.effects.push(Effect::Specs(Box::new(cfg.clone())));
        self.destinations = crate::params::destinations(&cfg);
        if cfg.unicast.is_none() {
            if let Err(e) = self.socket.join(cfg.multicast_group) {
                tracing::error!(instance = %name, error = %e, "instance {name}: {e}");
            }
        }
        self.inputs = inputs;
        self.stats
            .instance(&name, |i| i.configured_priority = cfg.priority);
        self.cfg = cfg;
        tracing::info!(instance = %name, "instance {name}: reloaded");
        self.execute(actions).await;
    }

    async fn stop(mut self) {
        self.apply(Instant::now(), Event::Shutdown).await;
        if self.leftover_vips {
            // Stopped before the election settled: leave nothing behind.
            self.leftover_vips = false;
            let vips = self.machine.params().vips.clone();
            self.effects.push(Effect::Remove(vips));
        }
        // VIPs gone before we return: the caller may exit right after.
        self.effects.flush().await;
        self.hooks
            .drain(self.script_timeout + Duration::from_secs(1))
            .await;
        tracing::info!(instance = %self.cfg.name, "instance {} stopped", self.cfg.name);
    }

    async fn apply(&mut self, now: Instant, event: Event) {
        let actions = self.machine.handle(now, event);
        self.execute(actions).await;
        self.settle_leftovers();
    }

    /// Decides the fate of VIPs a crashed run may have left behind, once
    /// the protocol knows who is master: ours to keep when this run is
    /// master, removed when another router is (their duplicate would answer
    /// ARP for the VIP) or when this instance is not in the election.
    fn settle_leftovers(&mut self) {
        if !self.leftover_vips {
            return;
        }
        let own = self.machine.params().primary_ip;
        let other_master = self.machine.current_master().is_some_and(|m| m != own);
        match self.machine.state() {
            State::Master => self.leftover_vips = false,
            // Initialize: not started yet (or stopping, see `stop`).
            State::Initialize => {}
            State::Backup if !other_master => {}
            State::Backup | State::Fault => {
                self.leftover_vips = false;
                let vips = self.machine.params().vips.clone();
                self.effects.push(Effect::Remove(vips));
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        let name = self.cfg.name.clone();
        for action in actions {
            match action {
                Action::Transition(t) => {
                    let to = VrrpState::from(t.to);
                    // Leaving Initialize is starting, entering it is stopping.
                    let from = match t.from {
                        State::Initialize => VrrpState::Init,
                        s => VrrpState::from(s),
                    }
                    .notify_word();
                    let to_word = to.notify_word();
                    let peer = t.sender.map(|s| s.address.to_string());
                    let peer_priority = t.sender.map(|s| s.priority);
                    tracing::info!(instance = %name, from, to = to_word,
                        reason = t.reason.as_str(), peer = peer.as_deref(), peer_priority,
                        priority = self.machine.priority(),
                        "instance {name}: {from} -> {to_word} ({}{})", t.reason.as_str(), by(t.sender));
                    self.stats.instance(&name, |i| {
                        *i.transitions.entry(to).or_default() += 1;
                        *i.transition_reasons.entry(t.reason).or_default() += 1;
                        i.last_transition = Some((t.reason, t.sender));
                    });
                }
                Action::SendAdvert(out) => {
                    for &dst in &self.destinations {
                        let sent = match out.encode(dst) {
                            Ok(bytes) => self.socket.send(out.source, dst, &bytes).await,
                            Err(e) => Err(std::io::Error::other(e)),
                        };
                        match sent {
                            Ok(()) => self.stats.instance(&name, |i| i.adverts_sent += 1),
                            Err(e) => {
                                self.stats.instance(&name, |i| i.send_errors += 1);
                                tracing::warn!(instance = %name, interface = %self.cfg.interface, peer = %dst, error = %e,
                                    "instance {name}: cannot send advert to {dst} on {}: {e}", self.cfg.interface);
                            }
                        }
                    }
                }
                Action::AddVips(v) => self.effects.push(Effect::Add(v)),
                Action::RemoveVips(v) => self.effects.push(Effect::Remove(v)),
                Action::SendGarp { vips, count } => self.effects.push(Effect::Garp { vips, count }),
                Action::Notify {
                    state,
                    priority,
                    reason,
                    sender,
                } => self
                    .hooks
                    .notify(state.into(), priority, HookContext { reason, sender }),
            }
        }
        let (state, prio, master) = (
            VrrpState::from(self.machine.state()),
            self.machine.priority(),
            self.machine.current_master(),
        );
        self.stats.instance(&name, |i| {
            i.state = state;
            i.priority = prio;
            i.master_ip = master;
        });
    }
}
