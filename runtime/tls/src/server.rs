//! rustls `ServerConfig`s for the proxy's HTTPS listeners.
//!
//! What rustls already guarantees, so there is nothing to configure:
//! only AEAD cipher suites (AES-GCM, ChaCha20-Poly1305; no CBC, no RC4),
//! only ECDHE key exchange (no static RSA), no renegotiation, no
//! compression, no SSLv3/TLS 1.0/1.1. What we set: the minimum version
//! (TLS 1.2 or 1.3), ALPN `h2` then `http/1.1`, the client certificate
//! verifier per site, and session tickets whose keys every node of the
//! cluster shares ([`crate::tickets`]).
//!
//! One `ServerConfig` per site of a listener: rustls picks the client
//! verifier and versions per config, and [`ListenerTls`] chooses the
//! config after reading the ClientHello (tokio-rustls `LazyConfigAcceptor`),
//! which is how `verify_client` and `min_version` can differ between sites
//! sharing an address. Every config of a listener shares its
//! [`SniResolver`], the ticketer and the session cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ProducesTickets, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache,
    StoresServerSessions, WebPkiClientVerifier,
};
use rustls::version::{TLS12, TLS13};

use crate::config::{ClientCertificates, TlsSettings, TlsVersion, VerifyClient};
use crate::error::LoadError;
use crate::pem;
use crate::sni::SniResolver;
use crate::tickets::SharedTicketer;

/// ALPN in server preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS 1.2 session IDs held per node (nginx `ssl_session_cache`); TLS 1.3
/// and ticket-capable 1.2 clients use tickets, which are what survive a
/// failover.
const SESSION_CACHE: usize = 4096;

/// What every site of a node shares.
#[derive(Clone)]
pub struct Shared {
    pub tickets: Arc<dyn ProducesTickets>,
    pub sessions: Arc<dyn StoresServerSessions>,
    pub handshake_timeout: Duration,
}

impl Shared {
    /// `path` is the settings' YAML path (`tls`).
    pub fn from_settings(settings: &TlsSettings, path: &str) -> Result<Self, LoadError> {
        let tickets = match &settings.session_tickets {
            Some(t) => SharedTicketer::from_files(&t.key_files, t.lifetime),
            None => SharedTicketer::random(Duration::from_secs(6 * 3600)),
        }
        .map_err(|error| LoadError::TicketKeys {
            path: format!("{path}.session_tickets.key_files"),
            error,
        })?;
        Ok(Shared {
            tickets: Arc::new(tickets),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE),
            handshake_timeout: settings.handshake_timeout,
        })
    }
}

/// One site's `ServerConfig`.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    min_version: TlsVersion,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    shared: &Shared,
) -> Result<Arc<ServerConfig>, LoadError> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&TLS13, &TLS12],
        TlsVersion::Tls13 => &[&TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(crate::provider()).with_protocol_versions(versions)?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = shared.tickets.clone();
    config.session_storage = shared.sessions.clone();
    // rustls refuses a client-initiated renegotiation by design; nothing
    // to turn off. Two tickets per TLS 1.3 handshake (rustls's default)
    // let a browser open two resumed connections.
    Ok(Arc::new(config))
}

/// The client verifier of a site's `client_certificates`; `path` is that
/// field's YAML path.
pub fn client_verifier(
    path: &str,
    c: &ClientCertificates,
) -> Result<Arc<dyn ClientCertVerifier>, LoadError> {
    let roots = roots_from_file(&format!("{path}.ca_file"), &c.ca_file)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider());
    let builder = match c.verify {
        VerifyClient::On => builder,
        VerifyClient::Optional => builder.allow_unauthenticated(),
    };
    builder.build().map_err(|e| LoadError::Verifier {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// A root store from a PEM bundle; `path` is the field's YAML path.
pub fn roots_from_file(path: &str, file: &Path) -> Result<RootCertStore, LoadError> {
    let pem_err = |error| LoadError::Pem {
        path: path.to_string(),
        error,
    };
    let text = pem::read(file).map_err(pem_err)?;
    let certs = pem::certificates(&file.display().to_string(), &text).map_err(pem_err)?;
    let mut roots = RootCertStore::empty();
    for (block, der) in certs {
        roots.add(der).map_err(|e| LoadError::Roots {
            path: path.to_string(),
            file: file.to_path_buf(),
            message: format!("block {} (line {}): {e}", block.number, block.line),
        })?;
    }
    Ok(roots)
}

/// One HTTPS listener: its resolver and one config per site.
pub struct ListenerTls {
    pub(crate) resolver: Arc<SniResolver>,
    /// Parallel to the resolver's sites.
    pub(crate) configs: Vec<Arc<ServerConfig>>,
    /// The store's index of each of the listener's sites.
    pub(crate) store_index: Vec<usize>,
    pub(crate) handshake_timeout: Duration,
}

impl ListenerTls {
    pub fn resolver(&self) -> &Arc<SniResolver> {
        &self.resolver
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The listener's config for one site (`listener_site` indexes the
    /// listener's sites). Also a plain `TlsAcceptor` config: its resolver
    /// applies the whole SNI selection by itself.
    pub fn config(&self, listener_site: usize) -> &Arc<ServerConfig> {
        &self.configs[listener_site]
    }
}
