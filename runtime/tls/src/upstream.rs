//! rustls `ClientConfig`s for TLS to upstream servers.
//!
//! Unlike nginx (`proxy_ssl_verify off`, `proxy_ssl_server_name off` by
//! default) the server's certificate is verified and SNI is sent unless the
//! config says otherwise. Roots: the given `ca_file`, else the node's system
//! bundle (rustls-native-certs: `SSL_CERT_FILE`, or the distribution's
//! bundle such as /etc/pki/tls/certs/ca-bundle.crt on CentOS).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamTls;
use crate::error::LoadError;
use crate::pem;
use crate::server::roots_from_file;

/// One upstream's TLS client: its config and the name it verifies.
#[derive(Clone)]
pub struct UpstreamClient {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why TLS to an upstream server failed; names the server and the name
/// verified, for the 502's log line.
#[derive(Debug, thiserror::Error)]
#[error("TLS to upstream {addr} (verifying {name}): {error}")]
pub struct UpstreamTlsError {
    pub addr: SocketAddr,
    pub name: String,
    pub error: io::Error,
}

impl UpstreamTlsError {
    /// The rustls error behind the failure (e.g. a certificate error), if
    /// it was one.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        self.error.get_ref()?.downcast_ref()
    }
}

impl UpstreamClient {
    /// `path` is the upstream's `tls` YAML path (`upstreams.app.tls`).
    pub fn new(path: &str, tls: &UpstreamTls) -> Result<Self, LoadError> {
        let provider = crate::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if tls.verify {
            let roots = match &tls.ca_file {
                Some(f) => roots_from_file(&format!("{path}.ca_file"), f)?,
                None => system_roots(path)?,
            };
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        };
        let mut config = match &tls.client_certificate {
            None => builder.with_no_client_auth(),
            Some(c) => {
                let p = format!("{path}.client_certificate");
                let (chain, key) = pem::read_pair(&p, c)?;
                builder.with_client_auth_cert(chain, key).map_err(|error| {
                    LoadError::Certificate {
                        path: p,
                        file: c.chain.clone(),
                        error,
                    }
                })?
            }
        };
        config.enable_sni = tls.sni;
        let server_name = tls
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_string()).map_err(|e| LoadError::Verifier {
                    path: format!("{path}.server_name"),
                    message: format!("`{n}`: {e}"),
                })
            })
            .transpose()?;
        Ok(UpstreamClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The name verified (and sent as SNI when it is a DNS name) for a
    /// server at `addr`: `server_name`, else the address itself.
    pub fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
    }

    /// The handshake with the server at `addr` over `io`.
    pub async fn connect<IO>(
        &self,
        io: IO,
        addr: SocketAddr,
    ) -> Result<TlsStream<IO>, UpstreamTlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.name_for(addr);
        let shown = name.to_str().into_owned();
        self.connector
            .connect(name, io)
            .await
            .map_err(|error| UpstreamTlsError {
                addr,
                name: shown,
                error,
            })
    }
}

fn system_roots(path: &str) -> Result<RootCertStore, LoadError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let message = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(LoadError::SystemRoots {
            path: format!("{path}.ca_file"),
            message: if message.is_empty() {
                "none found".to_string()
            } else {
                message
            },
        });
    }
    Ok(roots)
}

/// `verify: false`: any certificate is accepted, but the handshake
/// signatures are still checked (the server must hold the key of the
/// certificate it sent).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
