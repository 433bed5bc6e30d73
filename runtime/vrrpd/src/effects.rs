//! VIP changes and GARP bursts of one instance, off the driver's path.
//!
//! The driver queues effects and goes straight back to its timers: a slow
//! netlink answer (rtnl lock held by some other tool) must not delay an
//! advert. One queue per instance keeps add/remove in order. GARP bursts
//! run as their own task so their spacing (`garp.interval`) never holds the
//! queue, and are cancelled when the VIPs are removed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use hadeploy_config::vrrp::Instance;
use ipnet::Ipv4Net;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::arp;
use crate::netlink::{LinkInfo, Netlink};
use crate::stats::Stats;

/// One queued effect.
#[derive(Debug)]
pub enum Effect {
    Add(Vec<Ipv4Addr>),
    Remove(Vec<Ipv4Addr>),
    Garp {
        vips: Vec<Ipv4Addr>,
        count: u32,
    },
    /// Answered once everything queued before it is done.
    Flush(oneshot::Sender<()>),
    /// A reload: where the VIPs of this config live. VIPs the old config
    /// had keep their old spec, so their removal uses the right prefix.
    Specs(Box<Instance>),
}

/// Where and how a VIP is configured.
#[derive(Debug, Clone)]
struct VipSpec {
    net: Ipv4Net,
    dev: String,
    label: Option<String>,
}

/// The queue's sending side.
#[derive(Debug, Clone)]
pub struct Effects {
    tx: mpsc::UnboundedSender<Effect>,
}

impl Effects {
    /// Starts the effect worker of `inst` on the current runtime.
    pub fn start(inst: &Instance, nl: Netlink, stats: Stats) -> (Effects, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            instance: inst.name.clone(),
            specs: specs(inst),
            garp_interval: inst.garp.interval,
            nl,
            stats,
            links: BTreeMap::new(),
            garps: Vec::new(),
        };
        (Effects { tx }, tokio::spawn(worker.run(rx)))
    }

    pub fn push(&self, e: Effect) {
        // The worker lives as long as the driver holding this sender.
        let _ = self.tx.send(e);
    }

    /// Waits until everything queued so far is done.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.push(Effect::Flush(tx));
        let _ = rx.await;
    }
}

fn specs(inst: &Instance) -> BTreeMap<Ipv4Addr, VipSpec> {
    inst.virtual_ipaddress
        .iter()
        .map(|v| {
            let spec = VipSpec {
                net: v.address,
                dev: v.dev.clone().unwrap_or_else(|| inst.interface.clone()),
                label: v.label.clone(),
            };
            (v.address.addr(), spec)
        })
        .collect()
}

struct Worker {
    instance: String,
    specs: BTreeMap<Ipv4Addr, VipSpec>,
    garp_interval: Duration,
    nl: Netlink,
    stats: Stats,
    links: BTreeMap<String, LinkInfo>,
    garps: Vec<JoinHandle<()>>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Effect>) {
        while let Some(e) = rx.recv().await {
            self.garps.retain(|t| !t.is_finished());
            match e {
                Effect::Add(vips) => self.add(&vips).await,
                Effect::Remove(vips) => {
                    for t in self.garps.drain(..) {
                        t.abort();
                    }
                    self.remove(&vips).await;
                }
                Effect::Garp { vips, count } => self.garp(vips, count).await,
                Effect::Flush(done) => {
                    let _ = done.send(());
                }
                Effect::Specs(inst) => self.specs.extend(specs(&inst)),
            }
        }
        for t in self.garps.drain(..) {
            t.abort();
        }
    }

    fn spec(&self, vip: Ipv4Addr) -> VipSpec {
        // Every VIP the machine names comes from this config; a /32 on the
        // instance interface is the keepalived default should one not.
        self.specs.get(&vip).cloned().unwrap_or_else(|| VipSpec {
            net: Ipv4Net::from(vip),
            dev: self
                .specs
                .values()
                .next()
                .map(|s| s.dev.clone())
                .unwrap_or_default(),
            label: None,
        })
    }

    async fn link(&mut self, dev: &str) -> Option<LinkInfo> {
        if let Some(l) = self.links.get(dev) {
            return Some(l.clone());
        }
        match self.nl.link(dev).await {
            Ok(l) => {
                self.links.insert(dev.to_string(), l.clone());
                Some(l)
            }
            Err(e) => {
                tracing::error!(instance = %self.instance, interface = dev, error = %e,
                    "instance {}: cannot use interface {dev}: {e}", self.instance);
                None
            }
        }
    }

    async fn add(&mut self, vips: &[Ipv4Addr]) {
        for &vip in vips {
            let s = self.spec(vip);
            let Some(link) = self.link(&s.dev).await else {
                continue;
            };
            match self
                .nl
                .add_vip(&s.dev, link.index, s.net, s.label.as_deref())
                .await
            {
                Ok(added) => {
                    tracing::info!(instance = %self.instance, vip = %s.net, interface = %s.dev,
                        "instance {}: {} {} on {}", self.instance,
                        if added { "added" } else { "already had" }, s.net, s.dev);
                    self.stats.instance(&self.instance, |i| {
                        if !i.vips_held.contains(&s.net) {
                            i.vips_held.push(s.net);
                        }
                    });
                }
                Err(e) => tracing::error!(instance = %self.instance, vip = %s.net, error = %e,
                    "instance {}: cannot add VIP {}: {e}", self.instance, s.net),
            }
        }
    }

    async fn remove(&mut self, vips: &[Ipv4Addr]) {
        for &vip in vips {
            let s = self.spec(vip);
            let Some(link) = self.link(&s.dev).await else {
                continue;
            };
            match self.nl.del_vip(&s.dev, link.index, s.net).await {
                Ok(removed) => {
                    if removed {
                        tracing::info!(instance = %self.instance, vip = %s.net, interface = %s.dev,
                            "instance {}: removed {} from {}", self.instance, s.net, s.dev);
                    } else {
                        tracing::debug!(instance = %self.instance, vip = %s.net, interface = %s.dev,
                            "instance {}: {} was not on {}", self.instance, s.net, s.dev);
                    }
                    self.stats
                        .instance(&self.instance, |i| i.vips_held.retain(|n| *n != s.net));
                }
                Err(e) => tracing::error!(instance = %self.instance, vip = %s.net, error = %e,
                    "instance {}: cannot remove VIP {}: {e}", self.instance, s.net),
            }
        }
    }

    async fn garp(&mut self, vips: Vec<Ipv4Addr>, count: u32) {
        // Group by device: one AF_PACKET socket per device and burst.
        let mut by_dev: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for vip in vips {
            by_dev.entry(self.spec(vip).dev).or_default().push(vip);
        }
        for (dev, vips) in by_dev {
            let Some(link) = self.link(&dev).await else {
                continue;
            };
            let instance = self.instance.clone();
            let stats = self.stats.clone();
            let interval = self.garp_interval;
            self.garps.push(tokio::spawn(garp_burst(
                instance, link, vips, count, interval, stats,
            )));
        }
    }
}

async fn garp_burst(
    instance: String,
    link: LinkInfo,
    vips: Vec<Ipv4Addr>,
    count: u32,
    interval: Duration,
    stats: Stats,
) {
    for n in 0..count {
        if n > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        match arp::send_garps(&link.name, link.index, link.mac, &vips) {
            Ok(()) => stats.instance(&instance, |i| i.garps_sent += vips.len() as u64),
            Err(e) => {
                tracing::warn!(instance = %instance, interface = %link.name, error = %e,
                    "instance {instance}: {e}");
                return;
            }
        }
    }
}
