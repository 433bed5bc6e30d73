//! Offline certificate checks, one function per rule, shared by
//! `hadeploy check` (files on the operator's machine, or inline secrets)
//! and `hadeploy-runtime check` (files on the node).
//!
//! Each finding carries the YAML path of the field it is about
//! (`sites[0].tls.certificates[1].chain`), so the caller's source map turns
//! it into file:line:column, and names the PEM file and block it found.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hadeploy_config::{Diagnostic, Severity};
use rustls::SignatureAlgorithm;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::config::SiteTls;
use crate::names;
use crate::pem;

/// A certificate expiring sooner than this is a warning (the 21
/// days: an ACME client renews at 30, so this means renewal is failing).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(21 * 24 * 3600);

/// Which rule produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// The PEM text parses, its blocks are certificates / one key.
    Pem,
    /// The private key belongs to the first certificate.
    KeyMatchesLeaf,
    /// Each certificate is issued (and signed) by the next.
    ChainOrder,
    /// The leaf covers every server_name of the site.
    NamesCovered,
    /// Not expired, not yet valid, or expiring soon.
    Expiry,
    /// Two certificates of one site have different key types.
    KeyTypes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub diagnostic: Diagnostic,
}

impl Finding {
    fn new(rule: Rule, severity: Severity, path: &str, message: String) -> Self {
        let diagnostic = match severity {
            Severity::Error => Diagnostic::error(path, message),
            Severity::Warning => Diagnostic::warning(path, message),
        };
        Finding { rule, diagnostic }
    }
    fn error(rule: Rule, path: &str, message: String) -> Self {
        Finding::new(rule, Severity::Error, path, message)
    }
    pub fn is_error(&self) -> bool {
        self.diagnostic.is_error()
    }
}

/// Rule [`Rule::Pem`] for a chain: every block decodes and is an X.509
/// certificate. `path` is the `chain` field's YAML path.
pub fn chain_pem(
    path: &str,
    source_name: &str,
    text: &[u8],
) -> Result<Vec<CertificateDer<'static>>, Finding> {
    let certs = pem::certificates(source_name, text)
        .map_err(|e| Finding::error(Rule::Pem, path, e.to_string()))?;
    for (block, der) in &certs {
        if let Err(e) = X509Certificate::from_der(der) {
            return Err(Finding::error(
                Rule::Pem,
                path,
                format!(
                    "{source_name}: block {} (line {}): not an X.509 certificate: {e}",
                    block.number, block.line
                ),
            ));
        }
    }
    Ok(certs.into_iter().map(|(_, der)| der).collect())
}

/// Rule [`Rule::Pem`] for a key: exactly one private key block.
pub fn key_pem(
    path: &str,
    source_name: &str,
    text: &[u8],
) -> Result<PrivateKeyDer<'static>, Finding> {
    pem::private_key(source_name, text).map_err(|e| Finding::error(Rule::Pem, path, e.to_string()))
}

/// Rule [`Rule::KeyMatchesLeaf`]: the key is usable and its public half is
/// the first certificate's. Says so when it matches a later certificate
/// instead (the chain starts with the wrong one).
pub fn key_matches_leaf(
    path: &str,
    chain: &[CertificateDer<'_>],
    key: &PrivateKeyDer<'_>,
) -> Option<Finding> {
    let signing = match crate::provider()
        .key_provider
        .load_private_key(key.clone_key())
    {
        Ok(k) => k,
        Err(e) => {
            return Some(Finding::error(
                Rule::KeyMatchesLeaf,
                path,
                format!("the private key cannot be used: {e}"),
            ));
        }
    };
    let spki = signing.public_key()?;
    let matches = |der: &CertificateDer<'_>| {
        X509Certificate::from_der(der).is_ok_and(|(_, c)| c.public_key().raw == spki.as_ref())
    };
    if chain.first().is_some_and(matches) {
        return None;
    }
    let message = match chain.iter().position(matches) {
        Some(i) => format!(
            "the key belongs to certificate {} ({}), not to the first: the chain must start with the leaf",
            i + 1,
            describe(&chain[i])
        ),
        None => format!(
            "the key does not belong to the leaf certificate ({})",
            chain.first().map(describe).unwrap_or_default()
        ),
    };
    Some(Finding::error(Rule::KeyMatchesLeaf, path, message))
}

/// Rule [`Rule::ChainOrder`]: certificate i is issued by certificate i+1
/// (names match and the signature verifies).
pub fn chain_order(path: &str, chain: &[CertificateDer<'_>]) -> Vec<Finding> {
    let parsed: Vec<_> = chain
        .iter()
        .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
        .collect();
    let mut out = Vec::new();
    for (i, pair) in parsed.windows(2).enumerate() {
        let (cert, issuer) = (&pair[0], &pair[1]);
        let named = cert.issuer().as_raw() == issuer.subject().as_raw();
        if !named || cert.verify_signature(Some(issuer.public_key())).is_err() {
            out.push(Finding::error(
                Rule::ChainOrder,
                path,
                format!(
                    "certificate {} ({}) is not issued by certificate {} ({}): the chain must be the leaf, then each certificate's issuer in turn",
                    i + 1,
                    subject(cert),
                    i + 2,
                    subject(issuer)
                ),
            ));
        }
    }
    out
}

/// Rule [`Rule::NamesCovered`]: every server_name is covered by a DNS name
/// of the leaf (exact, or a one-label wildcard). Lists those that are not.
pub fn names_covered(
    path: &str,
    leaf: &CertificateDer<'_>,
    server_names: &[String],
) -> Option<Finding> {
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return None; // reported by chain_pem
    };
    let dns = dns_names(&cert);
    let uncovered: Vec<&str> = server_names
        .iter()
        .filter(|n| !dns.iter().any(|d| names::covers(d, n)))
        .map(String::as_str)
        .collect();
    if uncovered.is_empty() {
        return None;
    }
    let have = if dns.is_empty() {
        "the certificate has no DNS subjectAltName (clients ignore the CN)".to_string()
    } else {
        format!("the certificate covers {}", dns.join(", "))
    };
    Some(Finding::error(
        Rule::NamesCovered,
        path,
        format!("not covered: {}; {have}", uncovered.join(", ")),
    ))
}

/// Rule [`Rule::Expiry`] for every certificate of the chain: expired or
/// not yet valid is an error, expiring within `warn_within` a warning.
pub fn expiry(
    path: &str,
    chain: &[CertificateDer<'_>],
    now: SystemTime,
    warn_within: Duration,
) -> Vec<Finding> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut out = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            continue;
        };
        let v = cert.validity();
        let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
        let what = format!("certificate {} ({})", i + 1, subject(&cert));
        let finding = if until < now {
            Some((
                Severity::Error,
                format!("{what} expired on {}", v.not_after),
            ))
        } else if from > now {
            Some((
                Severity::Error,
                format!("{what} is not valid before {}", v.not_before),
            ))
        } else if until - now < warn_within.as_secs() as i64 {
            let days = (until - now) / 86_400;
            Some((
                Severity::Warning,
                format!("{what} expires in {days} days, on {}", v.not_after),
            ))
        } else {
            None
        };
        if let Some((severity, message)) = finding {
            out.push(Finding::new(Rule::Expiry, severity, path, message));
        }
    }
    out
}

/// Rule [`Rule::KeyTypes`]: a site's two certificates are one ECDSA and
/// one RSA (two of a kind would make the second unreachable).
pub fn key_types(path: &str, keys: &[(usize, SignatureAlgorithm)]) -> Option<Finding> {
    for (n, (i, a)) in keys.iter().enumerate() {
        if let Some((j, _)) = keys[..n].iter().find(|(_, b)| b == a) {
            return Some(Finding::error(
                Rule::KeyTypes,
                path,
                format!(
                    "certificates[{j}] and certificates[{i}] both have {a:?} keys: give one ECDSA and one RSA certificate"
                ),
            ));
        }
    }
    None
}

/// Every rule for one site, reading the files it names. `site_path` is the
/// site's YAML path (`sites[0]`); `server_names` the site's names.
pub fn site(
    site_path: &str,
    tls: &SiteTls,
    server_names: &[String],
    now: SystemTime,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut algorithms = Vec::new();
    for (i, paths) in tls.certificates.iter().enumerate() {
        let p = format!("{site_path}.tls.certificates[{i}]");
        match pair(&p, &paths.chain, &paths.key, server_names, now) {
            Ok((findings, algorithm)) => {
                out.extend(findings);
                algorithms.extend(algorithm.map(|a| (i, a)));
            }
            Err(f) => out.push(f),
        }
    }
    out.extend(key_types(
        &format!("{site_path}.tls.certificates"),
        &algorithms,
    ));
    out
}

/// The rules for one chain + key pair read from files; `path` is the
/// `certificates[i]` entry. Returns the key's algorithm for [`key_types`].
pub fn pair(
    path: &str,
    chain_file: &Path,
    key_file: &Path,
    server_names: &[String],
    now: SystemTime,
) -> Result<(Vec<Finding>, Option<SignatureAlgorithm>), Finding> {
    let (chain_path, key_path) = (format!("{path}.chain"), format!("{path}.key"));
    let read =
        |p: &str, f: &Path| pem::read(f).map_err(|e| Finding::error(Rule::Pem, p, e.to_string()));
    let chain_text = read(&chain_path, chain_file)?;
    let key_text = read(&key_path, key_file)?;
    let chain = chain_pem(&chain_path, &chain_file.display().to_string(), &chain_text)?;
    let key = key_pem(&key_path, &key_file.display().to_string(), &key_text)?;
    let mut out = Vec::new();
    out.extend(key_matches_leaf(&key_path, &chain, &key));
    out.extend(chain_order(&chain_path, &chain));
    out.extend(names_covered(&chain_path, &chain[0], server_names));
    out.extend(expiry(&chain_path, &chain, now, EXPIRY_WARNING));
    let algorithm = crate::provider()
        .key_provider
        .load_private_key(key)
        .ok()
        .map(|k| k.algorithm());
    Ok((out, algorithm))
}

/// What `hadeploy status` and the expiry metric show about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

impl CertInfo {
    pub fn of(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(CertInfo {
            subject: subject(&cert),
            issuer: cert.issuer().to_string(),
            dns_names: dns_names(&cert),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Seconds left until expiry (negative once expired), for the
    /// `seconds to expiry` gauge.
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.not_after - now
    }
}

/// The leaf's DNS subjectAltNames, lower-cased.
pub fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn subject(cert: &X509Certificate<'_>) -> String {
    cert.subject().to_string()
}

fn describe(der: &CertificateDer<'_>) -> String {
    X509Certificate::from_der(der).map_or_else(|_| "unparsable".to_string(), |(_, c)| subject(&c))
}
