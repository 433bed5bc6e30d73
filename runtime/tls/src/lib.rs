//! hadeploy's TLS core: what the proxy needs to terminate HTTPS and to speak
//! TLS to upstreams, and what `hadeploy check` / `hadeploy-runtime check`
//! need to validate certificates offline.
//!
//! - [`config`]: the schema pieces (site, proxy-wide, upstream), embedded
//!   by `hadeploy-config`.
//! - [`check`]: one function per certificate rule, findings with YAML paths.
//! - [`store`], [`sni`]: certificates loaded per config load, selected by
//!   SNI and by the client's signature schemes.
//! - [`server`], [`tickets`]: rustls server configs; session tickets shared
//!   by the cluster's nodes.
//! - [`handshake`]: accept with a timeout, report what was negotiated.
//! - [`upstream`]: rustls client configs for TLS to upstreams.
//! - [`live`]: the atomically swapped current store (reload).
//!
//! Crypto provider: ring (a static musl build with no C toolchain beyond
//! what ring's own build needs; see README.md).

pub mod check;
pub mod config;
pub mod error;
pub mod handshake;
pub mod live;
mod names;
pub mod pem;
pub mod server;
pub mod sni;
pub mod store;
pub mod tickets;
pub mod upstream;

use std::sync::{Arc, OnceLock};

pub use error::LoadError;

/// The one crypto provider every config of this crate is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
