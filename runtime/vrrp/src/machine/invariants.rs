//! Random event sequences against invariants that must hold after every
//! call, whatever the order of events: the adapter's view of the VIPs
//! (replayed from actions) matches the state, timers run exactly when the
//! protocol needs them, and no deadline is ever in the past.
//!
//! Deterministic (a fixed-seed LCG), so a failure reproduces.

use std::collections::BTreeSet;

use super::*;
use crate::packet::{ChecksumForm, Version};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const VIPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 0, 100),
    Ipv4Addr::new(10, 0, 0, 101),
    Ipv4Addr::new(10, 0, 0, 102),
];

fn params(rng: &mut Lcg, version: Version) -> InstanceParams {
    let mut vips: Vec<Ipv4Addr> = VIPS.iter().copied().filter(|_| rng.below(2) == 0).collect();
    if vips.is_empty() {
        vips.push(VIPS[0]);
    }
    let mut p = InstanceParams::new(51, ME, vips);
    p.version = version;
    p.priority = [1, 100, 150, 254, 255][rng.below(5) as usize];
    p.advert_interval = match version {
        Version::V2 => Duration::from_secs(1 + rng.below(3)),
        Version::V3 => Duration::from_millis(10 * (1 + rng.below(200))),
    };
    p.preempt = rng.below(3) != 0;
    p.preempt_delay = Duration::from_secs(rng.below(3) * 5);
    p.garp.master_refresh = (rng.below(2) == 0).then(|| Duration::from_secs(1 + rng.below(20)));
    p
}

fn random_event(rng: &mut Lcg, version: Version, inst: &Instance) -> Event {
    match rng.below(20) {
        0 => Event::Startup,
        1 => Event::Shutdown,
        2 => Event::LinkDown,
        3 => Event::LinkUp,
        4 => Event::PriorityChanged(rng.below(256) as u8),
        5..=11 => Event::TimerExpired,
        _ => Event::Advert(Received {
            advert: Advert {
                version,
                vrid: 51,
                priority: [0, 1, 99, 100, 101, 200, 255][rng.below(7) as usize],
                interval: inst.params().advert_interval,
                addresses: inst.params().vips.clone(),
            },
            source: Ipv4Addr::new(10, 0, 0, [1, 2, 3][rng.below(3) as usize]),
            checksum: ChecksumForm::V2,
        }),
    }
}

#[test]
fn invariants_hold_for_random_event_sequences() {
    for seed in 0..40u64 {
        let mut rng = Lcg(seed);
        let version = if seed % 2 == 0 {
            Version::V2
        } else {
            Version::V3
        };
        let mut inst = Instance::new(params(&mut rng, version)).unwrap();
        let mut now = Instant::now();
        let mut held: BTreeSet<Ipv4Addr> = BTreeSet::new();
        let mut states_seen = BTreeSet::new();

        for step in 0..3000 {
            // Time moves forward: to the next deadline half the time.
            now += match inst.next_deadline() {
                Some(d) if rng.below(2) == 0 && d > now => d - now,
                _ => Duration::from_millis(rng.below(1500)),
            };
            let before = inst.state();
            let mut timer_event = false;
            let actions = if rng.below(50) == 0 {
                inst.reload(now, params(&mut rng, version)).unwrap()
            } else {
                let ev = random_event(&mut rng, version, &inst);
                timer_event = ev == Event::TimerExpired;
                inst.handle(now, ev)
            };
            let ctx = format!(
                "seed {seed} step {step}: {before:?} -> {:?}, {actions:?}",
                inst.state()
            );

            for a in &actions {
                match a {
                    Action::AddVips(v) => {
                        for ip in v {
                            assert!(held.insert(*ip), "added twice: {ctx}");
                        }
                    }
                    Action::RemoveVips(v) => {
                        for ip in v {
                            assert!(held.remove(ip), "removed unheld: {ctx}");
                        }
                    }
                    Action::SendAdvert(o) if o.advert.priority == 0 => {
                        assert_eq!(
                            before,
                            State::Master,
                            "priority 0 only from a master: {ctx}"
                        );
                    }
                    Action::SendAdvert(_) | Action::SendGarp { .. } => {}
                    Action::Notify { .. } | Action::Transition(_) => {}
                }
            }
            // The adapter's replayed VIP set matches the state.
            let want: BTreeSet<Ipv4Addr> = if inst.state() == State::Master {
                inst.params().vips.iter().copied().collect()
            } else {
                BTreeSet::new()
            };
            assert_eq!(held, want, "{ctx}");
            // A Notify for the new state closes every transition batch.
            let transitioned = actions.iter().any(|a| matches!(a, Action::Transition(_)));
            if transitioned {
                let last_notify = actions.iter().rev().find_map(|a| match a {
                    Action::Notify { state, .. } => Some(*state),
                    _ => None,
                });
                assert_eq!(last_notify, Some(inst.state()), "{ctx}");
                assert!(matches!(actions[0], Action::Transition(_)), "{ctx}");
            }
            // Timers run exactly while the protocol runs; after firing, every
            // due timer has been handled (none left at or before now). Other
            // events may arrive while a timer is overdue, as in the adapter.
            match inst.state() {
                State::Backup | State::Master => {
                    let d = inst.next_deadline().expect("running instance has a timer");
                    assert!(!timer_event || d > now, "{ctx}");
                }
                State::Initialize | State::Fault => assert_eq!(inst.next_deadline(), None, "{ctx}"),
            }
            states_seen.insert(inst.state().as_str());
        }
        assert_eq!(states_seen.len(), 4, "seed {seed} explored {states_seen:?}");
    }
}
