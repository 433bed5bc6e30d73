//! The client's view of the segment. One thread in the client namespace
//! records, with kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME),
//! every VRRP advert and every ARP frame in which some MAC claims the VIP
//! (gratuitous ARP or a reply). Another sends ARP who-has for the VIP every
//! 5 ms while probing is on. "The VIP answers on the backup" is the first
//! frame from the backup's MAC claiming the VIP: the instant a client can
//! reach it there.

use std::io::IoSliceMut;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType, recvmsg,
    setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeSpec, TimeVal};

use crate::netns::{CLIENT, Lab, VIP};

pub const PROBE_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Advert { src: Ipv4Addr, priority: u8 },
    Claim { mac: [u8; 6] },
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Since the epoch, on the same clock as `now()`.
    pub at: Duration,
    pub kind: Kind,
}

/// The clock packet timestamps use; read just before sending a signal.
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub struct Monitor {
    events: Arc<Mutex<Vec<Event>>>,
    probing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Monitor {
    pub fn start(lab: &Lab) -> Result<Monitor> {
        let client_mac = lab.mac(&lab.client)?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let probing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();

        let (ns, ev, st, ready) = (
            lab.client.clone(),
            events.clone(),
            stop.clone(),
            ready_tx.clone(),
        );
        let capture = std::thread::spawn(move || {
            let sock = Lab::enter(&ns).and_then(|()| capture_socket());
            match sock {
                Ok(fd) => {
                    let _ = ready.send(Ok(()));
                    capture_loop(&fd, &ev, &st);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        });
        let (ns, pr, st) = (lab.client.clone(), probing.clone(), stop.clone());
        let prober = std::thread::spawn(move || {
            match Lab::enter(&ns).and_then(|()| probe_channel()) {
                Ok(mut tx) => {
                    let _ = ready_tx.send(Ok(()));
                    let frame = who_has(client_mac);
                    while !st.load(Ordering::Relaxed) {
                        if pr.load(Ordering::Relaxed) {
                            // A lost probe only costs resolution; the next follows.
                            let _ = tx.send_to(&frame, None);
                        }
                        std::thread::sleep(PROBE_EVERY);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        for _ in 0..2 {
            ready_rx
                .recv()
                .map_err(|_| anyhow!("monitor thread died"))??;
        }
        Ok(Monitor {
            events,
            probing,
            stop,
            threads: vec![capture, prober],
        })
    }

    pub fn probe(&self, on: bool) {
        self.probing.store(on, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.with(|v| v.clear());
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Event>) -> T) -> T {
        match self.events.lock() {
            Ok(mut v) => f(&mut v),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// First frame after `t` in which `mac` claims the VIP.
    pub fn first_claim(&self, mac: [u8; 6], t: Duration) -> Option<Duration> {
        self.with(|v| {
            v.iter()
                .filter(|e| e.at >= t && matches!(e.kind, Kind::Claim { mac: m } if m == mac))
                .map(|e| e.at)
                .min()
        })
    }

    /// Last advert from `src` at or before `t`.
    pub fn last_advert(&self, src: Ipv4Addr, t: Duration) -> Option<Duration> {
        self.with(|v| {
            v.iter()
                .filter(|e| e.at <= t && matches!(e.kind, Kind::Advert { src: s, .. } if s == src))
                .map(|e| e.at)
                .max()
        })
    }

    /// First priority-0 advert ("I am stopping") from `src` after `t`.
    pub fn first_resign(&self, src: Ipv4Addr, t: Duration) -> Option<Duration> {
        self.with(|v| {
            v.iter()
                .filter(|e| {
                    e.at >= t && matches!(e.kind, Kind::Advert { src: s, priority: 0 } if s == src)
                })
                .map(|e| e.at)
                .min()
        })
    }

    /// Adverts from `src` after `t` (readiness checks).
    pub fn adverts_since(&self, src: Ipv4Addr, t: Duration) -> usize {
        self.with(|v| {
            v.iter()
                .filter(|e| e.at >= t && matches!(e.kind, Kind::Advert { src: s, .. } if s == src))
                .count()
        })
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn capture_socket() -> Result<std::os::fd::OwnedFd> {
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::EthAll,
    )
    .context("AF_PACKET socket")?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
    // Wake up now and then to notice `stop`.
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000)).context("SO_RCVTIMEO")?;
    Ok(fd)
}

fn capture_loop(fd: &std::os::fd::OwnedFd, events: &Mutex<Vec<Event>>, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    while !stop.load(Ordering::Relaxed) {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (len, at) =
            match recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                Ok(msg) => {
                    let mut at = None;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                                at = Some(Duration::from(ts));
                            }
                        }
                    }
                    (msg.bytes, at.unwrap_or_else(now))
                }
                Err(_) => continue, // timeout (checks `stop`) or EINTR
            };
        if let Some(kind) = parse(&buf[..len]) {
            let e = Event { at, kind };
            match events.lock() {
                Ok(mut v) => v.push(e),
                Err(p) => p.into_inner().push(e),
            }
        }
    }
}

/// A VRRP advert (IPv4 protocol 112) or an ARP frame whose sender claims
/// the VIP.
fn parse(f: &[u8]) -> Option<Kind> {
    let ethertype = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let p = f.get(14..)?;
    match ethertype {
        0x0800 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            if *p.get(9)? != 112 {
                return None;
            }
            let src = Ipv4Addr::new(*p.get(12)?, *p.get(13)?, *p.get(14)?, *p.get(15)?);
            let priority = *p.get(ihl + 2)?;
            Some(Kind::Advert { src, priority })
        }
        0x0806 => {
            let spa = Ipv4Addr::new(*p.get(14)?, *p.get(15)?, *p.get(16)?, *p.get(17)?);
            if spa != VIP {
                return None;
            }
            let mut mac = [0u8; 6];
            mac.copy_from_slice(p.get(8..14)?);
            Some(Kind::Claim { mac })
        }
        _ => None,
    }
}

fn probe_channel() -> Result<Box<dyn pnet_datalink::DataLinkSender>> {
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == "eth0")
        .context("client eth0")?;
    let cfg = pnet_datalink::Config {
        // We never read from this socket; keep what it queues small.
        read_buffer_size: 4096,
        ..Default::default()
    };
    match pnet_datalink::channel(&iface, cfg).context("datalink channel")? {
        pnet_datalink::Channel::Ethernet(tx, _rx) => Ok(tx),
        _ => Err(anyhow!("unexpected datalink channel type")),
    }
}

/// Broadcast ARP request "who has VIP? tell CLIENT".
fn who_has(mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&CLIENT.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&VIP.octets());
    f
}
