//! The TLS state a node serves now, swapped atomically on reload.
//!
//! Reload is build -> validate -> swap: the new [`TlsSet`] is built
//! completely (every file read, every key matched, every listener made)
//! before anything changes; if that fails the error is returned and the old
//! set keeps serving. Handshakes in flight keep the set they started with;
//! established connections are not affected at all (rustls keeps its own
//! state per connection). Tickets survive the swap when the ticket key
//! files do not change: the new set reads the same keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::error::LoadError;
use crate::server::ListenerTls;
use crate::store::CertStore;

/// One listener to build: its address, the store's sites on it, and the
/// index (into `sites`) of its default site.
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub sites: Vec<usize>,
    pub default: Option<usize>,
}

/// Every HTTPS listener of one config generation.
pub struct TlsSet {
    pub store: CertStore,
    listeners: HashMap<SocketAddr, Arc<ListenerTls>>,
}

impl TlsSet {
    pub fn build(store: CertStore, specs: &[ListenerSpec]) -> Result<Self, LoadError> {
        let listeners = specs
            .iter()
            .map(|s| Ok((s.addr, Arc::new(store.listener(&s.sites, s.default)?))))
            .collect::<Result<_, LoadError>>()?;
        Ok(TlsSet { store, listeners })
    }

    pub fn listener(&self, addr: &SocketAddr) -> Option<&Arc<ListenerTls>> {
        self.listeners.get(addr)
    }
}

/// The current generation of `T` (a [`TlsSet`], or the proxy's own state
/// holding one).
pub struct Live<T> {
    current: ArcSwap<T>,
}

impl<T> Live<T> {
    pub fn new(initial: T) -> Self {
        Live {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The current generation; cheap, and safe to hold across a handshake.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Builds the next generation and swaps it in only if building
    /// succeeded; on error the current one stays.
    pub fn reload<E>(&self, build: impl FnOnce() -> Result<T, E>) -> Result<(), E> {
        let next = build()?;
        self.current.store(Arc::new(next));
        Ok(())
    }
}
