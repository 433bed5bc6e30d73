//! The certificates a node serves: every TLS site's [`SiteCerts`], loaded
//! once per config load into a [`CertStore`] together with what the sites
//! share (ticket keys, the session cache), then viewed per listener
//! ([`CertStore::listener`]).
//!
//! Reload: build a new store from the new config (every file read and
//! checked, every listener built), and only then swap it in
//! ([`crate::live::Live`]); a store that fails to build leaves the old one
//! serving.

use std::fmt;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use rustls::server::danger::ClientCertVerifier;

use crate::config::{SiteTls, TlsSettings, TlsVersion};
use crate::error::LoadError;
use crate::pem;
use crate::server::{ListenerTls, Shared, client_verifier, server_config};
use crate::sni::{ListenerSite, SniResolver};

/// One site's certificates, in preference order (ECDSA first: smaller and
/// faster handshakes; RSA for the clients that offer nothing else).
pub struct SiteCerts {
    pub name: String,
    pub keys: Vec<Arc<CertifiedKey>>,
    pub reject_unknown_sni: bool,
}

impl fmt::Debug for SiteCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|k| k.key.algorithm()).collect();
        f.debug_struct("SiteCerts")
            .field("name", &self.name)
            .field("keys", &algs)
            .finish()
    }
}

impl SiteCerts {
    /// Loads every chain + key of `tls`; `path` is the site's YAML path.
    /// A key that does not match its leaf is an error here too (rustls
    /// would fail every handshake); expiry and chain order are not (nginx
    /// serves those, and `check` reports them).
    pub fn load(path: &str, name: &str, tls: &SiteTls) -> Result<Self, LoadError> {
        let provider = crate::provider();
        let mut keys = Vec::new();
        for (i, c) in tls.certificates.iter().enumerate() {
            let p = format!("{path}.tls.certificates[{i}]");
            let (chain, key) = pem::read_pair(&p, c)?;
            let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|error| {
                LoadError::Certificate {
                    path: p.clone(),
                    file: c.chain.clone(),
                    error,
                }
            })?;
            keys.push(Arc::new(certified));
        }
        if keys.is_empty() {
            return Err(LoadError::NoCertificate {
                path: format!("{path}.tls.certificates"),
            });
        }
        keys.sort_by_key(|k| preference(k.key.algorithm()));
        Ok(SiteCerts {
            name: name.to_string(),
            keys,
            reject_unknown_sni: tls.reject_unknown_sni,
        })
    }

    /// The first certificate whose key can sign with a scheme the client
    /// offers; the first one otherwise, so rustls reports the mismatch.
    pub fn choose(&self, schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.keys
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or(self.keys.first())
            .cloned()
    }
}

fn preference(a: rustls::SignatureAlgorithm) -> u8 {
    use rustls::SignatureAlgorithm::*;
    match a {
        ECDSA => 0,
        ED25519 => 1,
        RSA => 2,
        _ => 3,
    }
}

impl ResolvesServerCert for SiteCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.signature_schemes())
    }
}

/// What the caller (the proxy, `check`) knows about a TLS site.
pub struct SiteInput<'a> {
    /// The site's YAML path (`sites[0]`), for errors.
    pub path: String,
    pub name: &'a str,
    pub server_names: &'a [String],
    pub tls: &'a SiteTls,
}

/// A site as loaded: certificates, versions, client verification.
pub struct LoadedSite {
    pub certs: Arc<SiteCerts>,
    pub server_names: Vec<String>,
    pub min_version: TlsVersion,
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// Request header for the verified client subject.
    pub subject_header: Option<String>,
}

/// Every TLS site of a node, loaded and checked; one per config load.
pub struct CertStore {
    sites: Vec<LoadedSite>,
    shared: Shared,
}

impl CertStore {
    /// Reads every certificate, key, client CA and ticket key file. Any
    /// failure is an error naming the field and the file: nothing half
    /// loaded. `settings_path` is the settings' YAML path (`tls`).
    pub fn load(
        sites: &[SiteInput<'_>],
        settings: &TlsSettings,
        settings_path: &str,
    ) -> Result<Self, LoadError> {
        let shared = Shared::from_settings(settings, settings_path)?;
        let sites = sites
            .iter()
            .map(|s| {
                let certs = Arc::new(SiteCerts::load(&s.path, s.name, s.tls)?);
                let client_verifier = s
                    .tls
                    .client_certificates
                    .as_ref()
                    .map(|c| client_verifier(&format!("{}.tls.client_certificates", s.path), c))
                    .transpose()?;
                Ok(LoadedSite {
                    certs,
                    server_names: s.server_names.to_vec(),
                    min_version: s.tls.min_version,
                    client_verifier,
                    subject_header: s
                        .tls
                        .client_certificates
                        .as_ref()
                        .map(|c| c.subject_header.clone()),
                })
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(CertStore { sites, shared })
    }

    pub fn sites(&self) -> &[LoadedSite] {
        &self.sites
    }

    /// One listener over some of the store's sites (`sites` index
    /// [`CertStore::sites`]); `default` indexes `sites` too (nginx's
    /// `default_server`, else its first site for that address).
    pub fn listener(
        &self,
        sites: &[usize],
        default: Option<usize>,
    ) -> Result<ListenerTls, LoadError> {
        if sites.is_empty() {
            return Err(LoadError::EmptyListener);
        }
        let chosen = sites
            .iter()
            .map(|&i| self.sites.get(i).ok_or(LoadError::NoSuchSite(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let resolver = Arc::new(SniResolver::new(
            chosen
                .iter()
                .map(|s| ListenerSite {
                    certs: s.certs.clone(),
                    server_names: &s.server_names,
                })
                .collect(),
            default,
        )?);
        let configs = chosen
            .iter()
            .map(|s| {
                server_config(
                    resolver.clone(),
                    s.min_version,
                    s.client_verifier.clone(),
                    &self.shared,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(ListenerTls {
            resolver,
            configs,
            store_index: sites.to_vec(),
            handshake_timeout: self.shared.handshake_timeout,
        })
    }
}
