//! One listener's SNI resolver: nginx's server selection applied to the
//! ClientHello. The exact server_name, then the wildcard (`*.example.com`;
//! one label, so at most one can match and it is the longest), then the
//! listener's default site, unless that site refuses unknown SNI
//! (`ssl_reject_handshake`). Within the site [`SiteCerts::choose`] picks the
//! ECDSA or RSA certificate.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::LoadError;
use crate::names;
use crate::store::SiteCerts;

/// One listener's view: which site a ClientHello's SNI selects.
pub struct SniResolver {
    sites: Vec<Arc<SiteCerts>>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    default: Option<usize>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("sites", &self.sites)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// A site on a listener: its certificates and the names routing to it.
pub struct ListenerSite<'a> {
    pub certs: Arc<SiteCerts>,
    pub server_names: &'a [String],
}

impl SniResolver {
    /// `default` indexes `sites`; None refuses every unknown name. A name
    /// listed by two sites is an error (the config validator reports it
    /// first, with its path; this guards the library's own invariant).
    pub fn new(sites: Vec<ListenerSite<'_>>, default: Option<usize>) -> Result<Self, LoadError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, s) in sites.iter().enumerate() {
            for name in s.server_names {
                let n = names::normalize(name);
                if n.is_empty() {
                    continue;
                }
                let map = if n.starts_with("*.") {
                    &mut wildcard
                } else {
                    &mut exact
                };
                if let Some(prev) = map.insert(n.clone(), i)
                    && prev != i
                {
                    return Err(LoadError::DuplicateName {
                        name: n,
                        first: sites[prev].certs.name.clone(),
                        second: s.certs.name.clone(),
                    });
                }
            }
        }
        if default.is_some_and(|d| d >= sites.len()) {
            return Err(LoadError::NoSuchDefault);
        }
        Ok(SniResolver {
            sites: sites.into_iter().map(|s| s.certs).collect(),
            exact,
            wildcard,
            default,
        })
    }

    /// Index of the site serving `sni`, or None to refuse the handshake.
    pub fn site_for(&self, sni: Option<&str>) -> Option<usize> {
        if let Some(sni) = sni {
            let n = names::normalize(sni);
            if let Some(i) = self.exact.get(&n) {
                return Some(*i);
            }
            if let Some(i) = names::wildcard_for(&n).and_then(|w| self.wildcard.get(&w)) {
                return Some(*i);
            }
        }
        self.default.filter(|d| !self.sites[*d].reject_unknown_sni)
    }

    pub fn site(&self, index: usize) -> &Arc<SiteCerts> {
        &self.sites[index]
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let site = self.site_for(hello.server_name())?;
        self.sites[site].choose(hello.signature_schemes())
    }
}
