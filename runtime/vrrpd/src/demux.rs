//! One raw socket per interface, its receive loop, and the VRID routing
//! table that hands each packet to its instance's driver.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hadeploy_vrrp::peek_vrid;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::driver::Packet;
use crate::socket::VrrpSocket;
use crate::stats::{IfaceDiscard, Stats};

/// Instance routes of one interface: VRID -> (packet queue, own source).
pub(crate) type Routes = Arc<Mutex<HashMap<u8, (mpsc::Sender<Packet>, Ipv4Addr)>>>;

pub(crate) fn lock_routes(
    r: &Routes,
) -> std::sync::MutexGuard<'_, HashMap<u8, (mpsc::Sender<Packet>, Ipv4Addr)>> {
    // Plain map of channel handles: still consistent after a panic.
    r.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Iface {
    pub(crate) socket: Arc<VrrpSocket>,
    pub(crate) routes: Routes,
    pub(crate) rx_task: JoinHandle<()>,
}

pub(crate) async fn rx_loop(socket: Arc<VrrpSocket>, routes: Routes, stats: Stats) {
    let ifname = socket.interface().to_string();
    let mut buf = vec![0u8; 65536];
    loop {
        let r = match socket.recv(&mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                stats.with(|s| s.iface_discard(&ifname, IfaceDiscard::BadIpHeader));
                continue;
            }
            Err(e) => {
                tracing::warn!(interface = %ifname, error = %e, "VRRP receive on {ifname} failed: {e}");
                // Never spin on a persistent error.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(vrid) = peek_vrid(r.payload) else {
            stats.with(|s| s.iface_discard(&ifname, IfaceDiscard::TooShort));
            tracing::debug!(interface = %ifname, from = %r.src, len = r.payload.len(),
                "{ifname}: dropped a {}-byte packet from {}: too short for a VRRP header", r.payload.len(), r.src);
            continue;
        };
        let route = lock_routes(&routes).get(&vrid).cloned();
        match route {
            None => stats.with(|s| s.iface_discard(&ifname, IfaceDiscard::UnknownVrid)),
            // Our own advert (multicast loop is off, but a unicast peer list
            // could name us): never compare with ourselves.
            Some((_, own)) if own == r.src => {}
            Some((tx, _)) => {
                let p = Packet {
                    src: r.src,
                    dst: r.dst,
                    ttl: r.ttl,
                    payload: r.payload.to_vec(),
                };
                if tx.try_send(p).is_err() {
                    stats.with(|s| s.iface_discard(&ifname, IfaceDiscard::QueueFull));
                    tracing::debug!(interface = %ifname, vrid, "VRID {vrid} queue full, packet dropped");
                }
            }
        }
    }
}
