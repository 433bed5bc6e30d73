//! The daemon: threads, sockets per interface, one driver per instance,
//! reload and shutdown.
//!
//! Threads: the caller's runtime only forwards shutdown and reload. The
//! protocol (sockets, timers, state machines, netlink, GARP) runs on its own
//! current-thread runtime on the `vrrp-protocol` thread, so proxy load on
//! the caller's runtime cannot delay an advert. Hooks and track scripts run
//! on a second one, `vrrp-worker`, so a slow or hung script cannot either.
//! Both threads start from the calling thread and inherit its network
//! namespace (what the tests rely on).

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hadeploy_config::vrrp::{Instance as InstanceConfig, VrrpConfig};
use hadeploy_vrrp::Instance;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::demux::{Iface, Routes, lock_routes, rx_loop};
use crate::driver::{Control, Driver, InputKind, Inputs, Packet};
use crate::effects::Effects;
use crate::error::VrrpdError;
use crate::hooks::Hooks;
use crate::linkwatch::LinkWatch;
use crate::netlink::Netlink;
use crate::params::{configured_source, destinations, instance_params};
use crate::socket::VrrpSocket;
use crate::stats::Stats;
use crate::track::Trackers;
use crate::worker::Worker;

/// Packets queued per instance before the receive loop drops them.
const PACKET_QUEUE: usize = 64;

enum Command {
    Reload(Box<VrrpConfig>),
    Shutdown,
}

/// Runs the VRRP daemon until `shutdown` resolves, applying each config
/// received on `reload` (already loaded and validated, e.g. by
/// `hadeploy_config::load_vrrp`). `stats` is written as the protocol runs;
/// keep a clone to serve [`Stats::status`] and [`Stats::render_prometheus`].
///
/// On shutdown every master sends priority 0 and removes its VIPs, STOP
/// hooks run (bounded by `script_timeout`), then this returns. An error
/// means startup failed (missing interface, no address to send from, no
/// CAP_NET_RAW...) or a thread could not be started; nothing is left held.
pub async fn run(
    cfg: VrrpConfig,
    stats: Stats,
    shutdown: impl Future<Output = ()>,
    mut reload: mpsc::Receiver<VrrpConfig>,
) -> Result<(), VrrpdError> {
    let worker = Worker::start()?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = oneshot::channel();
    // The protocol thread owns the worker and stops it last, after the
    // STOP hooks ran; also when this future is dropped mid-way (the closed
    // command channel then reads as shutdown).
    std::thread::Builder::new()
        .name("vrrp-protocol".into())
        .spawn(move || {
            // First, from this thread: SCHED_RR applies to it alone.
            let rt = crate::realtime::apply(&cfg.realtime);
            stats.with(|s| s.realtime = Some(rt));
            let res = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(supervise(cfg, stats, worker.handle.clone(), cmd_rx)),
                Err(e) => Err(VrrpdError::Thread(e)),
            };
            worker.stop();
            let _ = done_tx.send(res);
        })
        .map_err(VrrpdError::Thread)?;

    tokio::pin!(shutdown);
    let mut reload_open = true;
    loop {
        tokio::select! {
            // The protocol thread ended on its own: a startup error.
            r = &mut done_rx => break r.unwrap_or(Err(VrrpdError::ThreadPanicked)),
            _ = &mut shutdown => {
                let _ = cmd_tx.send(Command::Shutdown);
                break (&mut done_rx).await.unwrap_or(Err(VrrpdError::ThreadPanicked));
            }
            c = reload.recv(), if reload_open => match c {
                Some(c) => { let _ = cmd_tx.send(Command::Reload(Box::new(c))); }
                None => reload_open = false,
            },
        }
    }
}

struct Running {
    interface: String,
    vrid: u8,
    source: Ipv4Addr,
    packets: mpsc::Sender<Packet>,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

struct Supervisor {
    stats: Stats,
    worker: Handle,
    nl: Netlink,
    links: LinkWatch,
    trackers: Trackers,
    script_timeout: Duration,
    ifaces: HashMap<String, Iface>,
    running: HashMap<String, Running>,
}

async fn supervise(
    cfg: VrrpConfig,
    stats: Stats,
    worker: Handle,
    mut cmds: mpsc::UnboundedReceiver<Command>,
) -> Result<(), VrrpdError> {
    let nl = Netlink::connect()?;
    let links = LinkWatch::default();
    let poller = tokio::spawn(links.clone().poll(nl.clone()));
    let mut sup = Supervisor {
        trackers: Trackers::start(&worker, &cfg.track_scripts, &cfg.instances),
        stats,
        worker,
        nl,
        links,
        script_timeout: cfg.script_timeout,
        ifaces: HashMap::new(),
        running: HashMap::new(),
    };
    tracing::info!(node = %cfg.node, instances = cfg.instances.len(), "VRRP daemon starting");
    let mut cfg = cfg;
    for inst in &cfg.instances {
        if let Err(e) = sup.start(&cfg, inst).await {
            sup.stop_all().await;
            poller.abort();
            return Err(e);
        }
    }
    while let Some(Command::Reload(new)) = cmds.recv().await {
        sup.reload(&cfg, &new).await;
        cfg = *new;
    }
    tracing::info!(node = %cfg.node, "VRRP daemon stopping");
    sup.stop_all().await;
    poller.abort();
    Ok(())
}

impl Supervisor {
    async fn source_of(&self, inst: &InstanceConfig) -> Result<(u32, Ipv4Addr), VrrpdError> {
        let link = self.nl.link(&inst.interface).await?;
        let src = match configured_source(inst) {
            Some(a) => a,
            None => self.nl.primary_ipv4(&inst.interface, link.index).await?,
        };
        Ok((link.index, src))
    }

    async fn inputs(&self, cfg: &VrrpConfig, inst: &InstanceConfig) -> Inputs {
        let mut inputs = vec![(
            self.links.watch(&self.nl, &inst.interface).await,
            InputKind::Link,
        )];
        for t in &inst.track_interface {
            inputs.push((self.links.watch(&self.nl, t).await, InputKind::Link));
        }
        for r in &inst.track_script {
            let Some(rx) = self.trackers.watch(&r.name) else {
                continue;
            };
            let base = cfg
                .track_scripts
                .iter()
                .find(|s| s.name == r.name)
                .map_or(0, |s| s.weight);
            inputs.push((rx, InputKind::Script(r.weight.unwrap_or(base))));
        }
        inputs
    }

    fn iface(&mut self, name: &str, index: u32) -> Result<&Iface, VrrpdError> {
        if !self.ifaces.contains_key(name) {
            let socket = Arc::new(VrrpSocket::open(name, index)?);
            let routes: Routes = Arc::default();
            let rx_task = tokio::spawn(rx_loop(socket.clone(), routes.clone(), self.stats.clone()));
            self.ifaces.insert(
                name.to_string(),
                Iface {
                    socket,
                    routes,
                    rx_task,
                },
            );
        }
        self.ifaces
            .get(name)
            .ok_or_else(|| VrrpdError::NoInterface {
                interface: name.to_string(),
            })
    }

    async fn start(&mut self, cfg: &VrrpConfig, inst: &InstanceConfig) -> Result<(), VrrpdError> {
        let (index, source) = self.source_of(inst).await?;
        let machine =
            Instance::new(instance_params(inst, source)).map_err(|e| VrrpdError::Instance {
                instance: inst.name.clone(),
                detail: e.to_string(),
            })?;
        let inputs = self.inputs(cfg, inst).await;
        let iface = self.iface(&inst.interface, index)?;
        let socket = iface.socket.clone();
        if inst.unicast.is_none() {
            socket.join(inst.multicast_group)?;
        }
        let (pkt_tx, pkt_rx) = mpsc::channel(PACKET_QUEUE);
        lock_routes(&iface.routes).insert(inst.virtual_router_id, (pkt_tx.clone(), source));
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        let (effects, _) = Effects::start(inst, self.nl.clone(), self.stats.clone());
        let driver = Driver {
            machine,
            socket,
            destinations: destinations(inst),
            inputs,
            hooks: Hooks::new(
                &self.worker,
                &inst.name,
                inst.notify.clone(),
                self.script_timeout,
            ),
            effects,
            stats: self.stats.clone(),
            worker: self.worker.clone(),
            script_timeout: self.script_timeout,
            cfg: inst.clone(),
            leftover_vips: true,
            strangers: Default::default(),
        };
        tracing::info!(instance = %inst.name, interface = %inst.interface, vrid = inst.virtual_router_id,
            source = %source, "instance {} on {} (VRID {}) starting, sending from {source}",
            inst.name, inst.interface, inst.virtual_router_id);
        self.running.insert(
            inst.name.clone(),
            Running {
                interface: inst.interface.clone(),
                vrid: inst.virtual_router_id,
                source,
                packets: pkt_tx,
                control: ctl_tx,
                task: tokio::spawn(driver.run(pkt_rx, ctl_rx)),
            },
        );
        Ok(())
    }

    async fn stop_one(&mut self, name: &str) {
        let Some(r) = self.running.remove(name) else {
            return;
        };
        if let Some(i) = self.ifaces.get(&r.interface) {
            lock_routes(&i.routes).remove(&r.vrid);
        }
        let _ = r.control.send(Control::Shutdown).await;
        let _ = r.task.await;
        self.stats.with(|s| s.instances.remove(name));
    }

    async fn stop_all(&mut self) {
        // All at once: masters' priority-0 adverts go out together.
        let all: Vec<Running> = self.running.drain().map(|(_, r)| r).collect();
        for r in &all {
            let _ = r.control.send(Control::Shutdown).await;
        }
        for r in all {
            let _ = r.task.await;
        }
        for (_, i) in self.ifaces.drain() {
            i.rx_task.abort();
        }
        std::mem::take(&mut self.trackers).stop();
    }

    async fn reload(&mut self, old: &VrrpConfig, new: &VrrpConfig) {
        tracing::info!(node = %new.node, "reloading VRRP config");
        self.script_timeout = new.script_timeout;
        if old.realtime != new.realtime {
            // We run on the protocol thread: this is the thread to change.
            let rt = crate::realtime::apply(&new.realtime);
            self.stats.with(|s| s.realtime = Some(rt));
        }
        if old.track_scripts != new.track_scripts {
            std::mem::take(&mut self.trackers).stop();
            self.trackers = Trackers::start(&self.worker, &new.track_scripts, &new.instances);
        }
        let gone: Vec<String> = (self.running.iter())
            .filter(|(name, r)| {
                !new.instances
                    .iter()
                    .any(|i| &i.name == *name && i.interface == r.interface)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            tracing::info!(instance = %name, "instance {name} removed by reload");
            self.stop_one(&name).await;
        }
        for inst in &new.instances {
            if !self.running.contains_key(&inst.name) {
                if let Err(e) = self.start(new, inst).await {
                    tracing::error!(instance = %inst.name, error = %e,
                        "instance {} not started: {e}", inst.name);
                }
                continue;
            }
            let source = match self.source_of(inst).await {
                Ok((_, s)) => s,
                Err(e) => {
                    tracing::error!(instance = %inst.name, error = %e,
                        "instance {}: reload skipped: {e}", inst.name);
                    continue;
                }
            };
            let inputs = self.inputs(new, inst).await;
            let Some(r) = self.running.get_mut(&inst.name) else {
                continue;
            };
            if let Some(i) = self.ifaces.get(&r.interface) {
                let mut routes = lock_routes(&i.routes);
                routes.remove(&r.vrid);
                routes.insert(inst.virtual_router_id, (r.packets.clone(), source));
            }
            r.vrid = inst.virtual_router_id;
            r.source = source;
            let params = instance_params(inst, source);
            let _ = r
                .control
                .send(Control::Reload(
                    Box::new(inst.clone()),
                    Box::new(params),
                    inputs,
                ))
                .await;
        }
    }
}
