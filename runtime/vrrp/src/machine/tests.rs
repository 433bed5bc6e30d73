//! Every transition and timer formula, driven with explicit instants.
//!
//! Instants come from `Instant::now()` once, then pure arithmetic, so the
//! tests are exact and never sleep; `tokio_paused_clock_event_loop` shows
//! the same machine under tokio's paused clock.

use super::*;
use crate::auth::Auth;
use crate::packet::{ChecksumForm, V3Checksum, VRRP_MULTICAST_V4, Version, decode};
use crate::params::{GarpParams, PeerPolicy};

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LOWER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HIGHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// v2 1 s, backup priority 100: 3.609375 s.
const MDI_100: Duration = Duration::from_nanos(3_609_375_000);
/// v2 1 s, priority 150: 3 + 106/256 s.
const MDI_150: Duration = Duration::from_nanos(3_414_062_500);

fn params(priority: u8) -> InstanceParams {
    let mut p = InstanceParams::new(51, ME, vec![VIP]);
    p.priority = priority;
    p
}

fn v3_params(priority: u8, interval: Duration) -> InstanceParams {
    let mut p = params(priority);
    p.version = Version::V3;
    p.advert_interval = interval;
    p
}

fn started(p: InstanceParams, t0: Instant) -> Instance {
    let mut i = Instance::new(p).unwrap();
    i.handle(t0, Event::Startup);
    i
}

/// An instance that became Master at the returned instant.
fn master(p: InstanceParams, t0: Instant) -> (Instance, Instant) {
    let mut i = started(p, t0);
    let d = i.next_deadline().unwrap();
    i.handle(d, Event::TimerExpired);
    assert_eq!(i.state(), State::Master);
    (i, d)
}

fn peer_advert(version: Version, src: Ipv4Addr, priority: u8, interval: Duration) -> Event {
    Event::Advert(Received {
        advert: Advert {
            version,
            vrid: 51,
            priority,
            interval,
            addresses: vec![VIP],
        },
        source: src,
        checksum: ChecksumForm::V2,
    })
}

fn adv(src: Ipv4Addr, priority: u8) -> Event {
    peer_advert(Version::V2, src, priority, secs(1))
}

fn out(priority: u8) -> Action {
    Action::SendAdvert(Outgoing {
        advert: Advert {
            version: Version::V2,
            vrid: 51,
            priority,
            interval: secs(1),
            addresses: vec![VIP],
        },
        source: ME,
        auth: Auth::None,
        v3_checksum: V3Checksum::PseudoHeader,
    })
}

fn tr(from: State, to: State, reason: Reason, at: Instant) -> Action {
    tr_by(from, to, reason, at, None)
}

fn tr_by(from: State, to: State, reason: Reason, at: Instant, sender: Option<Sender>) -> Action {
    Action::Transition(Transition {
        from,
        to,
        reason,
        at,
        sender,
    })
}

fn notify(state: State, priority: u8, reason: Reason) -> Action {
    notify_by(state, priority, reason, None)
}

fn notify_by(state: State, priority: u8, reason: Reason, sender: Option<Sender>) -> Action {
    Action::Notify {
        state,
        priority,
        reason,
        sender,
    }
}

fn from(address: Ipv4Addr, priority: u8) -> Option<Sender> {
    Some(Sender { address, priority })
}

fn garp(count: u32) -> Action {
    Action::SendGarp {
        vips: vec![VIP],
        count,
    }
}

/// Drive `inst` until `until`: deliver `events` at their instants and fire
/// timers exactly at their deadlines, in time order (a timer first on a tie).
fn run(
    inst: &mut Instance,
    events: Vec<(Instant, Event)>,
    until: Instant,
) -> Vec<(Instant, Action)> {
    let mut log = Vec::new();
    let mut events = events.into_iter().peekable();
    loop {
        let timer = inst.next_deadline().filter(|&d| d <= until);
        let next_event = events.peek().map(|(t, _)| *t).filter(|&t| t <= until);
        let (at, event) = match (timer, next_event) {
            (None, None) => break,
            (Some(d), e) if e.is_none_or(|e| d <= e) => (d, Event::TimerExpired),
            _ => events.next().unwrap(),
        };
        log.extend(inst.handle(at, event).into_iter().map(|a| (at, a)));
    }
    log
}

/// `make()` at `start`, `start + step`, ... up to `until`.
fn every(
    start: Instant,
    step: Duration,
    until: Instant,
    make: impl Fn() -> Event,
) -> Vec<(Instant, Event)> {
    let mut v = Vec::new();
    let mut t = start;
    while t <= until {
        v.push((t, make()));
        t += step;
    }
    v
}

fn became(log: &[(Instant, Action)], state: State) -> Vec<Instant> {
    log.iter()
        .filter_map(|(t, a)| match a {
            Action::Transition(tr) if tr.to == state => Some(*t),
            _ => None,
        })
        .collect()
}

fn garps_at(log: &[(Instant, Action)]) -> Vec<(Instant, u32)> {
    log.iter()
        .filter_map(|(t, a)| match a {
            Action::SendGarp { count, .. } => Some((*t, *count)),
            _ => None,
        })
        .collect()
}

// ---- startup ----

#[test]
fn startup_enters_backup_and_waits_master_down_interval() {
    let t0 = Instant::now();
    let mut i = Instance::new(params(100)).unwrap();
    assert_eq!(i.state(), State::Initialize);
    assert_eq!(i.next_deadline(), None);
    let a = i.handle(t0, Event::Startup);
    assert_eq!(
        a,
        [
            tr(State::Initialize, State::Backup, Reason::Startup, t0),
            notify(State::Backup, 100, Reason::Startup)
        ]
    );
    assert_eq!(i.next_deadline(), Some(t0 + MDI_100));
    assert_eq!(i.master_down_interval(), MDI_100);
}

#[test]
fn no_false_master_at_boot_when_the_master_is_alive() {
    // The real master advertises every second from 0.9 s: we never claim.
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let end = t0 + secs(30);
    let log = run(
        &mut i,
        every(t0 + ms(900), secs(1), end, || adv(HIGHER_IP, 200)),
        end,
    );
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.current_master(), Some(HIGHER_IP));
}

#[test]
fn timer_does_not_fire_early() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    assert!(
        i.handle(t0 + MDI_100 - ns(1), Event::TimerExpired)
            .is_empty()
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn backup_claims_at_master_down_interval() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let d = t0 + MDI_100;
    let a = i.handle(d, Event::TimerExpired);
    assert_eq!(
        a,
        [
            tr(State::Backup, State::Master, Reason::MasterDown, d),
            out(100),
            Action::AddVips(vec![VIP]),
            garp(5),
            notify(State::Master, 100, Reason::MasterDown),
        ]
    );
    assert_eq!(i.next_deadline(), Some(d + secs(1)));
    assert_eq!(i.current_master(), Some(ME));
}

#[test]
fn owner_255_is_master_at_once() {
    let t0 = Instant::now();
    let mut i = Instance::new(params(255)).unwrap();
    let a = i.handle(t0, Event::Startup);
    assert_eq!(
        a,
        [
            tr(State::Initialize, State::Master, Reason::Startup, t0),
            out(255),
            Action::AddVips(vec![VIP]),
            garp(5),
            notify(State::Master, 255, Reason::Startup),
        ]
    );
    assert_eq!(i.next_deadline(), Some(t0 + secs(1)));
}

#[test]
fn second_startup_is_ignored() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    assert!(i.handle(t0 + secs(1), Event::Startup).is_empty());
    assert_eq!(i.next_deadline(), Some(t0 + MDI_100));
}

// ---- master timers and GARP ----

#[test]
fn master_advertises_every_interval() {
    let (mut i, d) = master(params(100), Instant::now());
    for k in 1..=4 {
        assert_eq!(
            i.handle(d + secs(k), Event::TimerExpired),
            [out(100)],
            "tick {k}"
        );
        assert_eq!(i.next_deadline(), Some(d + secs(k + 1)));
    }
}

#[test]
fn late_wakeup_sends_one_advert_not_a_burst() {
    let (mut i, d) = master(params(100), Instant::now());
    let late = d + ms(3500);
    let sent: Vec<_> = i
        .handle(late, Event::TimerExpired)
        .into_iter()
        .filter(|a| matches!(a, Action::SendAdvert(_)))
        .collect();
    assert_eq!(sent, [out(100)]);
    assert_eq!(i.next_deadline(), Some(late + secs(1)));
}

#[test]
fn garp_schedule_keepalived_defaults() {
    // 5 GARPs on becoming master, 5 more after 5 s, then none (refresh off).
    let (mut i, d) = master(params(100), Instant::now());
    let log = run(&mut i, vec![], d + secs(120));
    assert_eq!(garps_at(&log), [(d + secs(5), 5)]);
    assert_eq!(i.next_deadline(), Some(d + secs(121)));
}

#[test]
fn garp_refresh_when_configured() {
    let mut p = params(100);
    p.garp.master_refresh = Some(secs(30));
    p.garp.master_refresh_repeat = 2;
    let (mut i, d) = master(p, Instant::now());
    let log = run(&mut i, vec![], d + secs(95));
    assert_eq!(
        garps_at(&log),
        [
            (d + secs(5), 5),
            (d + secs(30), 2),
            (d + secs(60), 2),
            (d + secs(90), 2)
        ]
    );
}

#[test]
fn garp_delay_zero_and_repeat_zero_disable_bursts() {
    let mut p = params(100);
    p.garp.master_delay = Duration::ZERO;
    let (mut i, d) = master(p, Instant::now());
    assert!(garps_at(&run(&mut i, vec![], d + secs(60))).is_empty());

    let mut p = params(100);
    p.garp = GarpParams {
        master_repeat: 0,
        ..GarpParams::default()
    };
    let t0 = Instant::now();
    let mut i = started(p, t0);
    let log = run(&mut i, vec![], t0 + secs(60));
    assert_eq!(became(&log, State::Master), [t0 + MDI_100]);
    assert!(garps_at(&log).is_empty());
}

#[test]
fn garp_timers_stop_when_leaving_master() {
    let (mut i, d) = master(params(100), Instant::now());
    let t = d + secs(2);
    i.handle(t, adv(HIGHER_IP, 200));
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.next_deadline(), Some(t + MDI_100));
    // The master stays alive: no GARP at d + 5 s or ever.
    let end = d + secs(30);
    let log = run(
        &mut i,
        every(t + secs(1), secs(1), end, || adv(HIGHER_IP, 200)),
        end,
    );
    assert!(log.is_empty(), "{log:?}");
}

// ---- backup receiving ----

#[test]
fn backup_advert_resets_master_down_timer() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let t1 = t0 + secs(2);
    assert!(i.handle(t1, adv(HIGHER_IP, 200)).is_empty());
    assert_eq!(i.next_deadline(), Some(t1 + MDI_100));
}

#[test]
fn backup_on_priority_zero_claims_after_skew_time() {
    // Worked number: priority 100 -> 0.609375 s.
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    i.handle(t0 + secs(1), adv(HIGHER_IP, 200));
    let t1 = t0 + ms(1500);
    assert!(i.handle(t1, adv(HIGHER_IP, 0)).is_empty());
    assert_eq!(i.next_deadline(), Some(t1 + ns(609_375_000)));
    let log = run(&mut i, vec![], t0 + secs(10));
    assert_eq!(became(&log, State::Master), [t1 + ns(609_375_000)]);
}

#[test]
fn equal_priority_backup_does_not_preempt() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let end = t0 + secs(20);
    // Even from a lower IP: ties only matter between two masters.
    let log = run(
        &mut i,
        every(t0 + secs(1), secs(1), end, || adv(LOWER_IP, 100)),
        end,
    );
    assert!(log.is_empty());
}

#[test]
fn preempt_takes_over_from_lower_priority_master() {
    let t0 = Instant::now();
    let mut i = started(params(150), t0);
    let end = t0 + secs(10);
    let log = run(
        &mut i,
        every(t0 + ms(500), secs(1), end, || adv(HIGHER_IP, 100)),
        end,
    );
    // All its adverts were discarded: we claim at our startup MDI.
    assert_eq!(became(&log, State::Master), [t0 + MDI_150]);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn nopreempt_never_takes_over_from_a_live_lower_priority_master() {
    let t0 = Instant::now();
    let mut p = params(150);
    p.preempt = false;
    let mut i = started(p, t0);
    let end = t0 + secs(60);
    let log = run(
        &mut i,
        every(t0 + ms(500), secs(1), end, || adv(HIGHER_IP, 100)),
        end,
    );
    assert!(log.is_empty(), "{log:?}");
    // But it still takes over when that master dies.
    let log = run(&mut i, vec![], end + secs(10));
    assert_eq!(became(&log, State::Master), [t0 + ms(59_500) + MDI_150]);
}

#[test]
fn preempt_delay_holds_off_preemption_after_startup() {
    let t0 = Instant::now();
    let mut p = params(150);
    p.preempt_delay = secs(10);
    let mut i = started(p, t0);
    let end = t0 + secs(30);
    let log = run(
        &mut i,
        every(t0 + secs(1), secs(1), end, || adv(HIGHER_IP, 100)),
        end,
    );
    // Adverts at 1..=9 s are accepted; from 10 s on they are discarded, so
    // the timer set at 9 s fires.
    assert_eq!(became(&log, State::Master), [t0 + secs(9) + MDI_150]);
}

#[test]
fn preempt_delay_does_not_delay_takeover_from_a_silent_master() {
    let t0 = Instant::now();
    let mut p = params(150);
    p.preempt_delay = secs(10);
    let mut i = started(p, t0);
    let log = run(&mut i, vec![], t0 + secs(10));
    assert_eq!(became(&log, State::Master), [t0 + MDI_150]);
}

#[test]
fn preempt_delay_restarts_when_a_fault_clears() {
    let t0 = Instant::now();
    let mut p = params(150);
    p.preempt_delay = secs(10);
    let mut i = started(p, t0);
    i.handle(t0 + secs(20), Event::LinkDown);
    let up = t0 + secs(30);
    i.handle(up, Event::LinkUp);
    let end = up + secs(30);
    let log = run(
        &mut i,
        every(up + secs(1), secs(1), end, || adv(HIGHER_IP, 100)),
        end,
    );
    assert_eq!(became(&log, State::Master), [up + secs(9) + MDI_150]);
}

#[test]
fn raised_priority_lets_a_backup_preempt() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let mut events = every(t0 + ms(500), secs(1), t0 + secs(20), || adv(HIGHER_IP, 120));
    events.push((t0 + ms(4600), Event::PriorityChanged(150)));
    events.sort_by_key(|(t, _)| *t);
    let log = run(&mut i, events, t0 + secs(20));
    // Last accepted advert at 4.5 s set the timer with the priority of
    // then (100); the running timer keeps its deadline, later adverts are
    // discarded.
    assert_eq!(became(&log, State::Master), [t0 + ms(4500) + MDI_100]);
}

// ---- master receiving ----

#[test]
fn master_answers_priority_zero_at_once() {
    let (mut i, d) = master(params(100), Instant::now());
    let t = d + ms(400);
    // The peer was master too (split brain ending): re-announce so clients
    // that learned its MAC for the VIP come back.
    assert_eq!(i.handle(t, adv(LOWER_IP, 0)), [out(100), garp(5)]);
    assert_eq!(i.next_deadline(), Some(t + secs(1)));
}

#[test]
fn master_steps_down_on_higher_priority() {
    // The winner is a known peer: priority 0 tells it we stepped down.
    let mut p = params(100);
    p.peers = PeerPolicy::only(vec![LOWER_IP]);
    let (mut i, d) = master(p, Instant::now());
    let t = d + ms(400);
    let by = from(LOWER_IP, 101);
    assert_eq!(
        i.handle(t, adv(LOWER_IP, 101)),
        [
            tr_by(State::Master, State::Backup, Reason::HigherPriority, t, by),
            out(0),
            Action::RemoveVips(vec![VIP]),
            notify_by(State::Backup, 100, Reason::HigherPriority, by),
        ]
    );
    assert_eq!(i.next_deadline(), Some(t + MDI_100));
    assert_eq!(i.current_master(), Some(LOWER_IP));
}

/// Regression (issue 10): stepping down to a router that is not one of
/// ours (a forged or colliding advert, or a third party the operator let
/// in) sent priority 0 too, and our backup read it as "master stopping"
/// and claimed while the stranger was still there: the pair flapped.
#[test]
fn master_stepping_down_to_a_stranger_sends_no_priority_zero() {
    for peers in [PeerPolicy::any(), {
        let mut p = PeerPolicy::only(vec![LOWER_IP]);
        p.also_accept = vec![HIGHER_IP];
        p
    }] {
        let mut p = params(100);
        p.peers = peers;
        let (mut i, d) = master(p, Instant::now());
        let t = d + ms(400);
        let by = from(HIGHER_IP, 254);
        assert_eq!(
            i.handle(t, adv(HIGHER_IP, 254)),
            [
                tr_by(State::Master, State::Backup, Reason::HigherPriority, t, by),
                Action::RemoveVips(vec![VIP]),
                notify_by(State::Backup, 100, Reason::HigherPriority, by),
            ]
        );
        assert_eq!(i.current_master(), Some(HIGHER_IP));
    }
}

#[test]
fn backup_honours_priority_zero_only_from_the_master_it_follows() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    // Following HIGHER_IP; LOWER_IP (a former master stepping down to it)
    // says priority 0: the master we follow is alive, keep waiting for it.
    i.handle(t0 + secs(1), adv(HIGHER_IP, 200));
    assert!(i.handle(t0 + ms(1010), adv(LOWER_IP, 0)).is_empty());
    assert_eq!(i.next_deadline(), Some(t0 + secs(1) + MDI_100));
    let log = run(&mut i, vec![], t0 + secs(2));
    assert!(log.is_empty(), "{log:?}");
    // From the master itself: hand over after Skew_Time, and say why.
    let t = t0 + secs(2);
    i.handle(t, adv(HIGHER_IP, 0));
    let skew = ns(609_375_000);
    let log = run(&mut i, vec![], t + secs(1));
    assert_eq!(became(&log, State::Master), [t + skew]);
    assert_eq!(
        log[0].1,
        tr_by(
            State::Backup,
            State::Master,
            Reason::PriorityZero,
            t + skew,
            from(HIGHER_IP, 0)
        )
    );
    assert!(log.iter().any(
        |(_, a)| *a == notify_by(State::Master, 100, Reason::PriorityZero, from(HIGHER_IP, 0))
    ));
}

#[test]
fn backup_that_follows_nobody_honours_any_priority_zero() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    i.handle(t0 + secs(1), adv(LOWER_IP, 0));
    assert_eq!(i.next_deadline(), Some(t0 + secs(1) + ns(609_375_000)));
}

#[test]
fn claims_name_their_real_reason_and_sender() {
    // Silence: the last master heard, with the priority it had.
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    i.handle(t0 + secs(1), adv(HIGHER_IP, 200));
    let log = run(&mut i, vec![], t0 + secs(6));
    let due = t0 + secs(1) + MDI_100;
    assert_eq!(
        log[0].1,
        tr_by(
            State::Backup,
            State::Master,
            Reason::MasterDown,
            due,
            from(HIGHER_IP, 200)
        )
    );
    // Preemption of a lower-priority master: named as such, not master_down.
    let mut i = started(params(150), t0);
    let log = run(
        &mut i,
        every(t0 + ms(500), secs(1), t0 + secs(5), || adv(HIGHER_IP, 100)),
        t0 + secs(5),
    );
    assert_eq!(
        log[0].1,
        tr_by(
            State::Backup,
            State::Master,
            Reason::Preempt,
            t0 + MDI_150,
            from(HIGHER_IP, 100)
        )
    );
    // Never heard anyone: master_down with no sender.
    let mut i = started(params(100), t0);
    let log = run(&mut i, vec![], t0 + secs(4));
    assert_eq!(
        log[0].1,
        tr(
            State::Backup,
            State::Master,
            Reason::MasterDown,
            t0 + MDI_100
        )
    );
}

#[test]
fn master_equal_priority_tie_break_on_primary_ip() {
    let (mut i, d) = master(params(100), Instant::now());
    // Lower IP at equal priority: we win and re-announce.
    let t = d + ms(200);
    assert_eq!(i.handle(t, adv(LOWER_IP, 100)), [out(100), garp(5)]);
    assert_eq!(i.state(), State::Master);
    // Higher IP at equal priority: we step down.
    let t = d + ms(400);
    let a = i.handle(t, adv(HIGHER_IP, 100));
    assert_eq!(
        a[0],
        tr_by(
            State::Master,
            State::Backup,
            Reason::EqualPriorityHigherIp,
            t,
            from(HIGHER_IP, 100)
        )
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn master_reannounces_on_lower_priority() {
    // keepalived: advert + GARP burst at once, delayed burst again.
    let (mut i, d) = master(params(100), Instant::now());
    let t = d + secs(7);
    let log = run(&mut i, vec![(t, adv(HIGHER_IP, 50))], t + secs(20));
    assert_eq!(garps_at(&log), [(d + secs(5), 5), (t, 5), (t + secs(5), 5)]);
    assert!(log.contains(&(t, out(100))));
    assert_eq!(i.state(), State::Master);
}

/// Split brain healing when the winner's advert arrives first: the loser
/// steps down at once and never sends a lower-priority advert, so the
/// winner only learns of the split from the loser's priority-0 goodbye.
#[test]
fn split_brain_heals_whichever_advert_arrives_first() {
    let t0 = Instant::now();
    let mut winner_p = params(150);
    winner_p.peers = PeerPolicy::only(vec![LOWER_IP]);
    let (mut winner, d) = master(winner_p, t0);
    let mut loser_p = params(100);
    loser_p.primary_ip = LOWER_IP;
    loser_p.peers = PeerPolicy::only(vec![ME]);
    let (mut loser, _) = master(loser_p, t0);
    let t = d + ms(300);
    let Event::Advert(mut from_winner) = adv(ME, 150) else {
        unreachable!()
    };
    from_winner.source = ME;
    let a = loser.handle(t, Event::Advert(from_winner));
    let goodbye = a
        .iter()
        .find_map(|x| match x {
            Action::SendAdvert(o) if o.advert.priority == 0 => Some(o.clone()),
            _ => None,
        })
        .expect("the loser says goodbye with priority 0");
    assert_eq!(loser.state(), State::Backup);
    let Event::Advert(mut rx) = adv(LOWER_IP, 0) else {
        unreachable!()
    };
    rx.advert = goodbye.advert;
    let b = winner.handle(t, Event::Advert(rx));
    assert!(b.contains(&garp(5)), "winner re-announces: {b:?}");
    assert_eq!(winner.state(), State::Master);
}

#[test]
fn lower_priority_announce_can_be_disabled() {
    let mut p = params(100);
    p.garp.lower_prio_announce = false;
    let (mut i, d) = master(p, Instant::now());
    assert!(i.handle(d + ms(300), adv(HIGHER_IP, 50)).is_empty());
}

#[test]
fn own_looped_back_advert_and_foreign_vrid_are_ignored() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    assert!(i.handle(t0 + secs(1), adv(ME, 200)).is_empty());
    let Event::Advert(mut rx) = adv(HIGHER_IP, 200) else {
        unreachable!()
    };
    rx.advert.vrid = 52;
    assert!(i.handle(t0 + secs(1), Event::Advert(rx)).is_empty());
    assert_eq!(i.next_deadline(), Some(t0 + MDI_100));
}

#[test]
fn master_priority_change_shows_in_the_next_advert() {
    let (mut i, d) = master(params(100), Instant::now());
    assert!(i.handle(d + ms(100), Event::PriorityChanged(80)).is_empty());
    assert_eq!(i.handle(d + secs(1), Event::TimerExpired), [out(80)]);
    i.handle(d + ms(1100), Event::PriorityChanged(0));
    assert_eq!(i.priority(), 1, "0 is reserved for stopping");
}

// ---- v3 ----

#[test]
fn v3_startup_uses_local_interval() {
    // Worked number: 0.1 s, priority 100 -> 0.3609375 s.
    let t0 = Instant::now();
    let i = started(v3_params(100, ms(100)), t0);
    assert_eq!(i.next_deadline(), Some(t0 + ns(360_937_500)));
}

#[test]
fn v3_backup_learns_master_adver_interval() {
    let t0 = Instant::now();
    let mut i = started(v3_params(100, secs(1)), t0);
    let t1 = t0 + ms(500);
    i.handle(t1, peer_advert(Version::V3, HIGHER_IP, 200, ms(100)));
    assert_eq!(i.master_adver_interval(), ms(100));
    assert_eq!(i.next_deadline(), Some(t1 + ns(360_937_500)));
    // Priority 0: Skew_Time of the learned interval, 156 * 0.1 / 256 s.
    let t2 = t1 + ms(50);
    i.handle(t2, peer_advert(Version::V3, HIGHER_IP, 0, ms(100)));
    assert_eq!(i.next_deadline(), Some(t2 + ns(60_937_500)));
}

#[test]
fn v3_master_stepping_down_learns_interval() {
    let (mut i, d) = master(v3_params(100, secs(1)), Instant::now());
    let t = d + ms(300);
    i.handle(t, peer_advert(Version::V3, HIGHER_IP, 200, ms(200)));
    // 3 * 0.2 + 156 * 0.2 / 256 = 0.721875 s.
    assert_eq!(i.next_deadline(), Some(t + ns(721_875_000)));
}

#[test]
fn v3_startup_after_learning_resets_to_local_interval() {
    let t0 = Instant::now();
    let mut i = started(v3_params(100, secs(1)), t0);
    i.handle(
        t0 + ms(10),
        peer_advert(Version::V3, HIGHER_IP, 200, ms(100)),
    );
    i.handle(t0 + ms(20), Event::LinkDown);
    i.handle(t0 + ms(30), Event::LinkUp);
    assert_eq!(i.master_adver_interval(), secs(1));
    assert_eq!(i.next_deadline(), Some(t0 + ms(30) + MDI_100));
}

// ---- fault ----

#[test]
fn link_down_as_master_sends_priority_zero_and_releases() {
    let (mut i, d) = master(params(100), Instant::now());
    let t = d + ms(300);
    assert_eq!(
        i.handle(t, Event::LinkDown),
        [
            tr(State::Master, State::Fault, Reason::Fault, t),
            out(0),
            Action::RemoveVips(vec![VIP]),
            notify(State::Fault, 100, Reason::Fault),
        ]
    );
    assert_eq!(i.next_deadline(), None);
    assert_eq!(i.current_master(), None);
    // Fault ignores adverts and timers; a second LinkDown is a no-op.
    assert!(i.handle(t + secs(1), adv(HIGHER_IP, 0)).is_empty());
    assert!(i.handle(t + secs(9), Event::TimerExpired).is_empty());
    assert!(i.handle(t + secs(9), Event::LinkDown).is_empty());
}

#[test]
fn link_down_as_backup() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    let t = t0 + secs(1);
    assert_eq!(
        i.handle(t, Event::LinkDown),
        [
            tr(State::Backup, State::Fault, Reason::Fault, t),
            notify(State::Fault, 100, Reason::Fault)
        ]
    );
    assert_eq!(i.next_deadline(), None);
}

#[test]
fn link_up_returns_to_backup_and_waits() {
    let t0 = Instant::now();
    let (mut i, d) = master(params(100), t0);
    i.handle(d + secs(1), Event::LinkDown);
    let t = d + secs(5);
    assert_eq!(
        i.handle(t, Event::LinkUp),
        [
            tr(State::Fault, State::Backup, Reason::FaultCleared, t),
            notify(State::Backup, 100, Reason::FaultCleared)
        ]
    );
    assert_eq!(i.next_deadline(), Some(t + MDI_100));
    assert!(i.handle(t, Event::LinkUp).is_empty());
}

#[test]
fn link_up_owner_is_master_at_once() {
    let t0 = Instant::now();
    let mut i = started(params(255), t0);
    i.handle(t0 + secs(1), Event::LinkDown);
    let a = i.handle(t0 + secs(2), Event::LinkUp);
    assert_eq!(
        a[0],
        tr(
            State::Fault,
            State::Master,
            Reason::FaultCleared,
            t0 + secs(2)
        )
    );
    assert!(a.contains(&out(255)));
}

#[test]
fn link_down_before_startup_starts_in_fault() {
    let t0 = Instant::now();
    let mut i = Instance::new(params(100)).unwrap();
    assert!(i.handle(t0, Event::LinkDown).is_empty());
    assert_eq!(
        i.handle(t0, Event::Startup),
        [
            tr(State::Initialize, State::Fault, Reason::Startup, t0),
            notify(State::Fault, 100, Reason::Startup)
        ]
    );
    assert_eq!(i.next_deadline(), None);
    i.handle(t0 + secs(1), Event::LinkUp);
    assert_eq!(i.state(), State::Backup);
}

// ---- shutdown ----

#[test]
fn shutdown_as_master_sends_priority_zero_and_releases() {
    let (mut i, d) = master(params(100), Instant::now());
    let t = d + ms(300);
    assert_eq!(
        i.handle(t, Event::Shutdown),
        [
            tr(State::Master, State::Initialize, Reason::Shutdown, t),
            out(0),
            Action::RemoveVips(vec![VIP]),
            notify(State::Initialize, 100, Reason::Shutdown),
        ]
    );
    assert_eq!(i.next_deadline(), None);
    assert!(i.handle(t, Event::Shutdown).is_empty());
    assert!(i.handle(t + secs(5), adv(HIGHER_IP, 0)).is_empty());
    // Can start again.
    i.handle(t + secs(6), Event::Startup);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn shutdown_as_backup_sends_nothing() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    assert_eq!(
        i.handle(t0 + secs(1), Event::Shutdown),
        [
            tr(
                State::Backup,
                State::Initialize,
                Reason::Shutdown,
                t0 + secs(1)
            ),
            notify(State::Initialize, 100, Reason::Shutdown)
        ]
    );
}

#[test]
fn shutdown_from_fault_runs_stop_hooks_only() {
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    i.handle(t0 + secs(1), Event::LinkDown);
    let t = t0 + secs(2);
    assert_eq!(
        i.handle(t, Event::Shutdown),
        [
            tr(State::Fault, State::Initialize, Reason::Shutdown, t),
            notify(State::Initialize, 100, Reason::Shutdown)
        ]
    );
    // The fault condition is remembered across a restart.
    i.handle(t + secs(1), Event::Startup);
    assert_eq!(i.state(), State::Fault);
}

#[test]
fn graceful_handover_between_two_instances() {
    // Two machines wired back to back through the codec: A (150) is master;
    // A shuts down; B (100) claims Skew_Time (0.609375 s) later.
    let t0 = Instant::now();
    let (mut a, d) = master(params(150), t0);
    let mut pb = params(100);
    pb.primary_ip = HIGHER_IP;
    let mut b = started(pb, t0);
    let deliver = |acts: Vec<Action>, b: &mut Instance, at: Instant| {
        for act in acts {
            if let Action::SendAdvert(o) = act {
                let bytes = o.encode(VRRP_MULTICAST_V4).unwrap();
                let rx = decode(ME, VRRP_MULTICAST_V4, 255, &bytes, b.expectations()).unwrap();
                b.handle(at, Event::Advert(rx));
            }
        }
    };
    deliver(vec![out(150)], &mut b, d);
    let stop = d + ms(700);
    deliver(a.handle(stop, Event::Shutdown), &mut b, stop);
    let log = run(&mut b, vec![], stop + secs(5));
    assert_eq!(became(&log, State::Master), [stop + ns(609_375_000)]);
}

// ---- reload ----

#[test]
fn reload_with_same_params_is_silent_and_keeps_timers() {
    let t0 = Instant::now();
    let (mut i, d) = master(params(100), t0);
    let before = i.next_deadline();
    assert_eq!(i.reload(d + ms(10), params(100)), Ok(vec![]));
    assert_eq!(i.next_deadline(), before);
    assert_eq!(i.state(), State::Master);

    let mut b = started(params(100), t0);
    assert_eq!(b.reload(t0 + ms(10), params(100)), Ok(vec![]));
    assert_eq!(b.next_deadline(), Some(t0 + MDI_100));
}

#[test]
fn reload_keeps_mastership_and_applies_vip_diff() {
    let (mut i, d) = master(params(100), Instant::now());
    let mut p = params(100);
    p.vips = vec![VIP, VIP2];
    let a = i.reload(d + ms(10), p.clone()).unwrap();
    let mut want_advert = i.advert(100);
    want_advert.advert.addresses = vec![VIP, VIP2];
    assert_eq!(
        a,
        [
            Action::AddVips(vec![VIP2]),
            Action::SendGarp {
                vips: vec![VIP2],
                count: 5
            },
            Action::SendAdvert(want_advert),
        ]
    );
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.expectations().addresses, Some(vec![VIP, VIP2]));

    p.vips = vec![VIP2];
    let a = i.reload(d + ms(20), p).unwrap();
    assert_eq!(a[0], Action::RemoveVips(vec![VIP]));
    assert!(matches!(a[1], Action::SendAdvert(_)));
    assert_eq!(a.len(), 2);
    assert_eq!(
        i.next_deadline(),
        Some(d + secs(1)),
        "adver timer unchanged"
    );
}

#[test]
fn reload_priority_change_replaces_effective_priority() {
    let (mut i, d) = master(params(100), Instant::now());
    i.handle(d, Event::PriorityChanged(90));
    // Unchanged configured priority keeps the adapter's effective value.
    i.reload(d + ms(1), params(100)).unwrap();
    assert_eq!(i.priority(), 90);
    let a = i.reload(d + ms(2), params(120)).unwrap();
    assert_eq!(i.priority(), 120);
    assert_eq!(a, [out(120)]);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn reload_changing_vrid_stops_old_router_and_starts_new() {
    let (mut i, d) = master(params(100), Instant::now());
    let mut p = params(100);
    p.vrid = 52;
    let t = d + ms(10);
    let a = i.reload(t, p).unwrap();
    assert_eq!(
        a,
        [
            tr(State::Master, State::Initialize, Reason::Reload, t),
            out(0), // VRID 51: the old router says goodbye
            Action::RemoveVips(vec![VIP]),
            notify(State::Initialize, 100, Reason::Reload),
            tr(State::Initialize, State::Backup, Reason::Reload, t),
            notify(State::Backup, 100, Reason::Reload),
        ]
    );
    assert_eq!(i.expectations().vrid, 52);
    assert_eq!(i.next_deadline(), Some(t + MDI_100));
}

#[test]
fn reload_rejects_invalid_params_and_keeps_running() {
    let (mut i, d) = master(params(100), Instant::now());
    let mut p = params(100);
    p.vips.clear();
    assert_eq!(i.reload(d, p), Err(ParamsError::NoVips));
    assert_eq!(i.params(), &params(100));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn reload_turning_on_garp_refresh_schedules_it() {
    let (mut i, d) = master(params(100), Instant::now());
    let mut p = params(100);
    p.garp.master_refresh = Some(secs(60));
    let t = d + secs(10);
    run(&mut i, vec![], t); // past the delayed burst at d + 5 s
    i.reload(t, p).unwrap();
    let log = run(&mut i, vec![], t + secs(61));
    assert_eq!(garps_at(&log), [(t + secs(60), 1)]);
}

#[test]
fn new_rejects_invalid_params() {
    assert_eq!(
        Instance::new(params(0)).err(),
        Some(ParamsError::BadPriority)
    );
}

// ---- wire glue ----

#[test]
fn outgoing_advert_decodes_with_peer_expectations() {
    let mut p = params(100);
    p.auth = Auth::pass(b"pw");
    let i = Instance::new(p.clone()).unwrap();
    let bytes = i.advert(100).encode(VRRP_MULTICAST_V4).unwrap();
    let mut peer = p;
    peer.primary_ip = HIGHER_IP;
    let rx = decode(ME, VRRP_MULTICAST_V4, 255, &bytes, &peer.expectations()).unwrap();
    assert_eq!(rx.advert.priority, 100);
    assert_eq!(rx.source, ME);
}

#[tokio::test(start_paused = true)]
async fn tokio_paused_clock_event_loop() {
    // The adapter's loop shape: sleep until the deadline, then TimerExpired.
    let t0 = Instant::now();
    let mut i = started(params(100), t0);
    tokio::time::sleep(ms(500)).await;
    i.handle(Instant::now(), adv(HIGHER_IP, 200));
    let heard = Instant::now();
    while i.state() != State::Master {
        let deadline = i.next_deadline().unwrap();
        tokio::time::sleep_until(deadline).await;
        i.handle(Instant::now(), Event::TimerExpired);
    }
    // tokio's timer wheel has millisecond granularity: sleep_until wakes
    // up to 1 ms after the deadline, never before it.
    let waited = Instant::now() - heard;
    assert!(waited >= MDI_100 && waited <= MDI_100 + ms(1), "{waited:?}");
}
