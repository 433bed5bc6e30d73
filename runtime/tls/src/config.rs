//! The TLS parts of `/etc/hadeploy/proxy.yaml`, to be embedded by
//! `hadeploy-config` (the one schema): [`TlsSettings`] on the proxy,
//! [`SiteTls`] on a site, [`UpstreamTls`] on an upstream.
//!
//! Defaults are nginx's unless a comment says why not; where nginx's default
//! is a known footgun (upstream verification and SNI off) we differ.

use std::path::PathBuf;
use std::time::Duration;

use hadeploy_config::Diagnostic;
use hadeploy_config::proxy::set_header_problem;
use rustls_pki_types::ServerName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use humantime_serde as human;

/// Proxy-wide TLS settings: what is known before the ClientHello names a
/// site, and what every site of the node shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Time for the whole handshake from accept. nginx uses
    /// `client_header_timeout` (60s); a handshake takes milliseconds, so a
    /// shorter bound frees the tasks a slow client would hold.
    #[serde(default = "ten_s", with = "human")]
    pub handshake_timeout: Duration,
    /// Shared session ticket keys (nginx `ssl_session_ticket_key`). Absent:
    /// a random key per process, so resumption does not survive a restart,
    /// a reload or a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_tickets: Option<SessionTickets>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            handshake_timeout: ten_s(),
            session_tickets: None,
        }
    }
}

fn ten_s() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionTickets {
    /// nginx-format key files (80 or 48 random bytes). The first encrypts
    /// new tickets, all decrypt: rotation prepends a new file and keeps the
    /// previous one.
    pub key_files: Vec<PathBuf>,
    /// How long a ticket is accepted after it was issued. Keep it at most
    /// the rotation period, so the oldest key still listed covers it.
    #[serde(default = "six_h", with = "human")]
    pub lifetime: Duration,
}

/// rustls's own `Ticketer` lifetime.
fn six_h() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// A site's HTTPS settings (nginx `ssl_*` inside a `server {}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTls {
    /// One or two certificates (an ECDSA and an RSA one for the same names);
    /// the handshake picks by the client's signature algorithms.
    pub certificates: Vec<CertificatePaths>,
    #[serde(default)]
    pub min_version: TlsVersion,
    /// nginx `ssl_reject_handshake on`: when this site is a listener's
    /// default, a ClientHello naming no site of the listener is refused.
    #[serde(default)]
    pub reject_unknown_sni: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,
    /// Requests on the site's cleartext listeners are redirected to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// nginx `ssl_verify_client on|optional`; absent means off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<ClientCertificates>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePaths {
    /// PEM: the leaf first, then the intermediates in order.
    pub chain: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key. A secret (0600).
    pub key: PathBuf,
}

/// Lowest protocol version offered. Written `"1.2"` or `"1.3"` (a bare
/// YAML `1.2` is a float and is accepted too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// nginx's default since 1.23.4 (`ssl_protocols TLSv1.2 TLSv1.3`).
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => format!("{n:.1}"),
        };
        match text.trim_start_matches("TLSv") {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            other => Err(serde::de::Error::custom(format!(
                "unsupported TLS version `{other}`; expected \"1.2\" or \"1.3\""
            ))),
        }
    }
}

/// `Strict-Transport-Security` on HTTPS responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    #[serde(with = "human")]
    pub max_age: Duration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl Hsts {
    /// The header value, e.g. `max-age=31536000; includeSubDomains; preload`.
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// Port 80 -> HTTPS, keeping path and query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    #[serde(default)]
    pub status: RedirectStatus,
    /// HTTPS port in `Location`; 443 is left out of the URL.
    #[serde(default = "https_port")]
    pub port: u16,
}

fn https_port() -> u16 {
    443
}

impl Redirect {
    /// `Location` for a request to `host` (without port) and `path_and_query`
    /// (already as the client sent it, starting with `/`).
    pub fn location(&self, host: &str, path_and_query: &str) -> String {
        match self.port {
            443 => format!("https://{host}{path_and_query}"),
            p => format!("https://{host}:{p}{path_and_query}"),
        }
    }
}

/// 301 (what nginx configs use; browsers may turn a POST into a GET) or
/// 308 (method and body kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectStatus {
    #[default]
    Moved301,
    Permanent308,
}

/// A redirect status other than 301 or 308.
#[derive(Debug, thiserror::Error)]
#[error("redirect status must be 301 or 308, not {0}")]
pub struct BadRedirectStatus(pub u16);

impl TryFrom<u16> for RedirectStatus {
    type Error = BadRedirectStatus;
    fn try_from(code: u16) -> Result<Self, BadRedirectStatus> {
        match code {
            301 => Ok(RedirectStatus::Moved301),
            308 => Ok(RedirectStatus::Permanent308),
            other => Err(BadRedirectStatus(other)),
        }
    }
}

impl From<RedirectStatus> for u16 {
    fn from(s: RedirectStatus) -> u16 {
        match s {
            RedirectStatus::Moved301 => 301,
            RedirectStatus::Permanent308 => 308,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificates {
    #[serde(default)]
    pub verify: VerifyClient,
    /// PEM bundle of the CAs client certificates must chain to
    /// (nginx `ssl_client_certificate`).
    pub ca_file: PathBuf,
    /// Request header carrying the verified subject (RFC 4514 form, like
    /// nginx's `$ssl_client_s_dn`) to the upstream. The proxy removes any
    /// header of that name the client sent.
    #[serde(default = "subject_header")]
    pub subject_header: String,
}

fn subject_header() -> String {
    "X-SSL-Client-S-DN".to_string()
}

/// `off` is the absence of `client_certificates`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyClient {
    /// A client without a valid certificate is refused in the handshake.
    #[default]
    On,
    /// A client may send none; one it sends must verify.
    Optional,
}

/// TLS from the proxy to an upstream's servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Verify the server's certificate (nginx `proxy_ssl_verify`, off by
    /// default there; on here).
    #[serde(default = "yes")]
    pub verify: bool,
    /// CA bundle to verify against; absent: the node's system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Name verified in the certificate and sent as SNI (nginx
    /// `proxy_ssl_name`). Absent: the server's IP address is verified
    /// (an IP SAN) and no SNI is sent (SNI cannot carry an address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Send SNI (nginx `proxy_ssl_server_name`, off by default there).
    #[serde(default = "yes")]
    pub sni: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<CertificatePaths>,
}

fn yes() -> bool {
    true
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls {
            verify: true,
            ca_file: None,
            server_name: None,
            sni: true,
            client_certificate: None,
        }
    }
}

/// hstspreload.org refuses shorter max-ages for preloading.
const PRELOAD_MIN_AGE: Duration = Duration::from_secs(31_536_000);

impl TlsSettings {
    /// Checks that need no file; `path` is this value's YAML path (`tls`).
    pub fn validate(&self, path: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if self.handshake_timeout.is_zero() {
            out.push(Diagnostic::error(
                format!("{path}.handshake_timeout"),
                "handshake_timeout must be above 0",
            ));
        }
        if let Some(t) = &self.session_tickets {
            if t.key_files.is_empty() {
                out.push(Diagnostic::error(
                    format!("{path}.session_tickets.key_files"),
                    "at least one ticket key file is required (the first encrypts)",
                ));
            }
            if t.lifetime.is_zero() {
                out.push(Diagnostic::error(
                    format!("{path}.session_tickets.lifetime"),
                    "lifetime must be above 0",
                ));
            }
        }
        out
    }
}

impl SiteTls {
    /// Checks that need no file; `path` is this value's YAML path
    /// (`sites[0].tls`).
    pub fn validate(&self, path: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        match self.certificates.len() {
            0 => out.push(Diagnostic::error(
                format!("{path}.certificates"),
                "a TLS site needs at least one certificate",
            )),
            1 | 2 => {}
            n => out.push(Diagnostic::error(
                format!("{path}.certificates"),
                format!("{n} certificates: at most two (one ECDSA, one RSA)"),
            )),
        }
        if let Some(h) = &self.hsts {
            let p = format!("{path}.hsts");
            if h.preload && !h.include_subdomains {
                out.push(Diagnostic::error(
                    format!("{p}.preload"),
                    "preload requires include_subdomains: true (hstspreload.org)",
                ));
            }
            if h.preload && h.max_age < PRELOAD_MIN_AGE {
                out.push(Diagnostic::error(
                    format!("{p}.max_age"),
                    "preload requires a max_age of at least 1 year (hstspreload.org)",
                ));
            }
        }
        if let Some(r) = &self.redirect
            && r.port == 0
        {
            out.push(Diagnostic::error(
                format!("{path}.redirect.port"),
                "port must be 1..65535",
            ));
        }
        if let Some(c) = &self.client_certificates
            && let Some(why) = set_header_problem(&c.subject_header, "")
        {
            out.push(Diagnostic::error(
                format!("{path}.client_certificates.subject_header"),
                why,
            ));
        }
        out
    }
}

impl UpstreamTls {
    /// Checks that need no file; `path` is this value's YAML path
    /// (`upstreams.app.tls`).
    pub fn validate(&self, path: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            out.push(Diagnostic::error(
                format!("{path}.server_name"),
                format!("`{name}` is not a DNS name or IP address"),
            ));
        }
        if !self.verify && self.ca_file.is_some() {
            out.push(Diagnostic::warning(
                format!("{path}.ca_file"),
                "ca_file is ignored while verify is false",
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(y: &str) -> Result<T, String> {
        yaml_serde::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn site_defaults_and_versions() {
        let s: SiteTls = parse("certificates: [{chain: a.pem, key: a.key}]\n").unwrap();
        assert_eq!(s.min_version, TlsVersion::Tls12);
        assert!(!s.reject_unknown_sni);
        for v in [
            "min_version: 1.3",
            "min_version: '1.3'",
            "min_version: TLSv1.3",
        ] {
            let s: SiteTls = parse(&format!("certificates: []\n{v}\n")).unwrap();
            assert_eq!(s.min_version, TlsVersion::Tls13, "{v}");
        }
        let e = parse::<SiteTls>("certificates: []\nmin_version: 1.1\n").unwrap_err();
        assert!(e.contains("unsupported TLS version `1.1`"), "{e}");
        let s = SiteTls {
            min_version: TlsVersion::Tls13,
            ..s
        };
        let back = yaml_serde::to_string(&s).unwrap();
        assert!(back.contains("min_version: '1.3'"), "{back}");
        assert_eq!(parse::<SiteTls>(&back).unwrap(), s);
    }

    #[test]
    fn unknown_keys_and_bad_redirect_status_are_refused() {
        let e = parse::<SiteTls>("certificates: []\nreject_unknown: true\n").unwrap_err();
        assert!(e.contains("unknown field `reject_unknown`"), "{e}");
        let e = parse::<Redirect>("status: 302\n").unwrap_err();
        assert!(e.contains("301 or 308, not 302"), "{e}");
        let r: Redirect = parse("status: 308\n").unwrap();
        assert_eq!(r.status, RedirectStatus::Permanent308);
        assert_eq!(r.location("a.test", "/x?y=1"), "https://a.test/x?y=1");
        let r: Redirect = parse("port: 8443\n").unwrap();
        assert_eq!(r.location("a.test", "/"), "https://a.test:8443/");
    }

    #[test]
    fn upstream_tls_verifies_and_sends_sni_by_default() {
        let u: UpstreamTls = parse("{}").unwrap();
        assert!(u.verify && u.sni);
        assert_eq!(u, UpstreamTls::default());
        let u: UpstreamTls = parse("server_name: 'bad name'\nverify: false\nca_file: x\n").unwrap();
        let d = u.validate("upstreams.app.tls");
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].path, "upstreams.app.tls.server_name");
        assert!(!d[1].is_error());
    }

    #[test]
    fn hsts_header_and_preload_rules() {
        let h: Hsts = parse("max_age: 1y\ninclude_subdomains: true\npreload: true\n").unwrap();
        assert_eq!(
            h.header_value(),
            "max-age=31557600; includeSubDomains; preload"
        );
        let s = SiteTls {
            certificates: vec![],
            min_version: TlsVersion::Tls12,
            reject_unknown_sni: false,
            hsts: Some(Hsts {
                max_age: Duration::from_secs(60),
                include_subdomains: false,
                preload: true,
            }),
            redirect: None,
            client_certificates: Some(ClientCertificates {
                verify: VerifyClient::Optional,
                ca_file: "ca.pem".into(),
                subject_header: "Bad Header".into(),
            }),
        };
        let paths: Vec<String> = s
            .validate("sites[0].tls")
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(
            paths,
            [
                "sites[0].tls.certificates",
                "sites[0].tls.hsts.preload",
                "sites[0].tls.hsts.max_age",
                "sites[0].tls.client_certificates.subject_header"
            ]
        );
    }

    #[test]
    fn settings_defaults_and_rules() {
        let t: TlsSettings = parse("session_tickets: {key_files: []}\n").unwrap();
        assert_eq!(t.handshake_timeout, Duration::from_secs(10));
        let d = t.validate("tls");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "tls.session_tickets.key_files");
    }
}
