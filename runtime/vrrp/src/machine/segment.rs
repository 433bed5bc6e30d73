//! Several instances on one simulated segment: every advert one sends is
//! encoded, delivered to every other instance `LATENCY` later and decoded
//! with the receiver's own expectations, exactly as the adapter does. For
//! behaviour that only shows between routers: flapping, chains of
//! step-downs, forged adverts.

use super::*;
use crate::auth::Auth;
use crate::discard::Discard;
use crate::packet::{V3Checksum, VRRP_MULTICAST_V4, Version, decode, encode};
use crate::params::PeerPolicy;

const LATENCY: Duration = Duration::from_micros(200);
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 13);
/// Not a router of the cluster: the forger.
const X: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 66);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const INTERVAL: Duration = Duration::from_millis(100);

fn v3(me: Ipv4Addr, priority: u8, peers: PeerPolicy) -> InstanceParams {
    let mut p = InstanceParams::new(51, me, vec![VIP]);
    p.version = Version::V3;
    p.advert_interval = INTERVAL;
    p.priority = priority;
    p.peers = peers;
    p
}

/// The cluster's own view: every other router of `all` is known.
fn cluster(me: Ipv4Addr, all: &[Ipv4Addr]) -> PeerPolicy {
    PeerPolicy::only(all.iter().copied().filter(|&a| a != me).collect())
}

struct Packet {
    at: Instant,
    to: usize,
    src: Ipv4Addr,
    payload: Vec<u8>,
}

struct Segment {
    routers: Vec<Instance>,
    pending: Vec<Packet>,
    /// (when, router, action)
    log: Vec<(Instant, usize, Action)>,
    discards: Vec<(usize, Discard)>,
}

impl Segment {
    fn start(params: Vec<InstanceParams>, t0: Instant) -> Segment {
        let mut s = Segment {
            routers: params
                .into_iter()
                .map(|p| Instance::new(p).unwrap())
                .collect(),
            pending: Vec::new(),
            log: Vec::new(),
            discards: Vec::new(),
        };
        for i in 0..s.routers.len() {
            s.handle(i, t0, Event::Startup);
        }
        s
    }

    /// A router joining later.
    fn add(&mut self, p: InstanceParams, at: Instant) -> usize {
        self.routers.push(Instance::new(p).unwrap());
        let i = self.routers.len() - 1;
        self.handle(i, at, Event::Startup);
        i
    }

    fn handle(&mut self, i: usize, at: Instant, ev: Event) {
        let actions = self.routers[i].handle(at, ev);
        for a in actions {
            if let Action::SendAdvert(o) = &a {
                let payload = o.encode(VRRP_MULTICAST_V4).unwrap();
                for to in (0..self.routers.len()).filter(|&j| j != i) {
                    self.pending.push(Packet {
                        at: at + LATENCY,
                        to,
                        src: o.source,
                        payload: payload.clone(),
                    });
                }
            }
            self.log.push((at, i, a));
        }
    }

    /// An advert from outside the cluster, heard by every router.
    fn inject(&mut self, at: Instant, src: Ipv4Addr, priority: u8) {
        let adv = Advert {
            version: Version::V3,
            vrid: 51,
            priority,
            interval: INTERVAL,
            addresses: vec![VIP],
        };
        let payload = encode(
            &adv,
            &Auth::None,
            src,
            VRRP_MULTICAST_V4,
            V3Checksum::PseudoHeader,
        )
        .unwrap();
        for to in 0..self.routers.len() {
            self.pending.push(Packet {
                at,
                to,
                src,
                payload: payload.clone(),
            });
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let timer = (0..self.routers.len())
                .filter_map(|i| self.routers[i].next_deadline().map(|d| (d, i)))
                .filter(|&(d, _)| d <= until)
                .min();
            let packet = (0..self.pending.len())
                .min_by_key(|&k| self.pending[k].at)
                .filter(|&k| self.pending[k].at <= until);
            match (timer, packet) {
                (None, None) => break,
                (Some((d, i)), p) if p.is_none_or(|k| d < self.pending[k].at) => {
                    self.handle(i, d, Event::TimerExpired);
                }
                (_, Some(k)) => {
                    let p = self.pending.swap_remove(k);
                    let expect = self.routers[p.to].expectations().clone();
                    match decode(p.src, VRRP_MULTICAST_V4, 255, &p.payload, &expect) {
                        Ok(rx) => self.handle(p.to, p.at, Event::Advert(rx)),
                        Err(why) => self.discards.push((p.to, why)),
                    }
                }
                (Some(_), None) => unreachable!("covered by the first timer arm"),
            }
        }
    }

    /// Times router `i` entered `state`.
    fn entered(&self, i: usize, state: State) -> usize {
        self.log
            .iter()
            .filter(|(_, r, a)| *r == i && matches!(a, Action::Transition(t) if t.to == state))
            .count()
    }

    /// Priority-0 adverts router `i` sent.
    fn goodbyes(&self, i: usize) -> usize {
        self.log
            .iter()
            .filter(|(_, r, a)| {
                *r == i && matches!(a, Action::SendAdvert(o) if o.advert.priority == 0)
            })
            .count()
    }

    fn transitions(&self) -> usize {
        self.log
            .iter()
            .filter(|(_, _, a)| matches!(a, Action::Transition(_)))
            .count()
    }
}

/// A pair settled with A master, at `t0 + 2 s`.
fn settled_pair(a: PeerPolicy, b: PeerPolicy, t0: Instant) -> (Segment, Instant) {
    let mut s = Segment::start(vec![v3(A, 150, a), v3(B, 100, b)], t0);
    let t = t0 + Duration::from_secs(2);
    s.run_until(t);
    assert_eq!(s.routers[0].state(), State::Master);
    assert_eq!(s.routers[1].state(), State::Backup);
    (s, t)
}

/// The forged run of issue 10: priority 254 from a non-member, 1/s for 10 s.
fn forge(s: &mut Segment, from: Instant) -> Instant {
    for k in 0..10 {
        s.inject(from + Duration::from_secs(k), X, 254);
    }
    let end = from + Duration::from_secs(12);
    s.run_until(end);
    end
}

/// Regression (issue 10): with the cluster's peers known (what hadeploy
/// renders), the forged adverts are discarded as `unknown_peer` and nothing
/// moves. Before the fix each router entered MASTER about 5 times.
#[test]
fn forged_adverts_from_a_stranger_cause_no_transition() {
    let t0 = Instant::now();
    let all = [A, B];
    let (mut s, t) = settled_pair(cluster(A, &all), cluster(B, &all), t0);
    let before = s.transitions();
    forge(&mut s, t);
    assert_eq!(s.transitions(), before, "{:?}", &s.log[before..]);
    assert_eq!(s.routers[0].state(), State::Master);
    let unknown = s
        .discards
        .iter()
        .filter(|(_, d)| *d == Discard::UnknownPeer)
        .count();
    assert_eq!(unknown, 20, "10 forged adverts, heard by both");
}

/// With the filter opened (a third party let in, or any source), the
/// stranger wins while it speaks, as keepalived lets it; but the master
/// yields without priority 0, so the backup never claims and the pair does
/// not flap between themselves.
#[test]
fn an_accepted_stranger_wins_but_the_pair_does_not_flap() {
    let t0 = Instant::now();
    for open in [true, false] {
        let policy = |me| {
            let mut p = cluster(me, &[A, B]);
            if open {
                p.accept_any = true;
            } else {
                p.also_accept = vec![X];
            }
            p
        };
        let (mut s, t) = settled_pair(policy(A), policy(B), t0);
        forge(&mut s, t);
        assert_eq!(s.goodbyes(0), 0, "no priority 0 to a stranger");
        assert_eq!(s.entered(1, State::Master), 0, "B never claims");
        assert_eq!(s.routers[0].state(), State::Master, "A back after X");
    }
}

/// Three routers of our own: C (200) joins and preempts A (150). A steps
/// down with priority 0 (C is known: the split-brain heal, kept). B (100)
/// already follows C, so A's priority 0 must not make it claim (C's
/// immediate re-advert on hearing priority 0 also covers this; the backup's
/// own rule holds when that re-advert is lost or the winner does not send one).
#[test]
fn a_preempting_peer_causes_one_handover_not_a_chain() {
    let t0 = Instant::now();
    let all = [A, B, C];
    let mut s = Segment::start(
        vec![v3(A, 150, cluster(A, &all)), v3(B, 100, cluster(B, &all))],
        t0,
    );
    let t = t0 + Duration::from_secs(2);
    s.run_until(t);
    let c = s.add(v3(C, 200, cluster(C, &all)), t);
    s.run_until(t + Duration::from_secs(3));
    assert_eq!(s.routers[c].state(), State::Master);
    assert_eq!(s.entered(0, State::Master), 1, "A: once, at the start");
    assert_eq!(s.entered(0, State::Backup), 2, "A: startup, then to C");
    assert_eq!(s.entered(1, State::Master), 0, "B never claims");
    assert_eq!(s.entered(c, State::Master), 1);
    assert_eq!(s.goodbyes(0), 1, "the heal: A tells C it stepped down");
}
