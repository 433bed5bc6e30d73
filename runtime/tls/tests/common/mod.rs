//! Test PKI (rcgen; RSA keys from `openssl genpkey`, since ring cannot
//! generate RSA keys), files in a temp dir, a loopback TLS server running
//! `handshake::accept`, and a rustls client.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hadeploy_tls::config::{CertificatePaths, SiteTls, TlsVersion};
use hadeploy_tls::handshake::{self, HandshakeError, Negotiated};
use hadeploy_tls::server::ListenerTls;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ecdsa,
    Rsa,
}

/// One RSA key for the whole test binary: 2048-bit generation is slow.
fn rsa_key_pem() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl genpkey");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
}

pub fn key(kind: Kind) -> KeyPair {
    match kind {
        Kind::Ecdsa => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        Kind::Rsa => KeyPair::from_pem_and_sign_algo(rsa_key_pem(), &PKCS_RSA_SHA256).unwrap(),
    }
}

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        Ca::with_parent(cn, None)
    }

    /// An intermediate when `parent` is given.
    pub fn with_parent(cn: &str, parent: Option<&Ca>) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = key(Kind::Ecdsa);
        let issuer = match parent {
            None => CertifiedIssuer::self_signed(p, key).unwrap(),
            Some(parent) => CertifiedIssuer::signed_by(p, key, &parent.issuer).unwrap(),
        };
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct LeafSpec<'a> {
    pub cn: &'a str,
    pub names: &'a [&'a str],
    pub kind: Kind,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub client: bool,
}

impl<'a> LeafSpec<'a> {
    pub fn new(cn: &'a str, names: &'a [&'a str], kind: Kind) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            cn,
            names,
            kind,
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(90),
            client: false,
        }
    }
}

impl Ca {
    pub fn leaf(&self, spec: &LeafSpec<'_>) -> Leaf {
        let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, spec.cn);
        p.not_before = spec.not_before;
        p.not_after = spec.not_after;
        p.extended_key_usages = vec![if spec.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = key(spec.kind);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name`, returning the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Chain file (leaf + `chain_rest`) and key file for `leaf` under `name`.
pub fn files(dir: &Path, name: &str, leaf: &Leaf, chain_rest: &[&Ca]) -> CertificatePaths {
    let mut chain = leaf.cert_pem.clone();
    for c in chain_rest {
        chain.push_str(&c.pem());
    }
    CertificatePaths {
        chain: write(dir, &format!("{name}.crt"), &chain),
        key: write(dir, &format!("{name}.key"), &leaf.key_pem),
    }
}

pub fn site_tls(certificates: Vec<CertificatePaths>) -> SiteTls {
    SiteTls {
        certificates,
        min_version: TlsVersion::Tls12,
        reject_unknown_sni: false,
        hsts: None,
        redirect: None,
        client_certificates: None,
    }
}

pub type Results = mpsc::UnboundedReceiver<Result<Negotiated, HandshakeError>>;

/// A loopback server: every connection goes through `handshake::accept`;
/// each outcome is sent on the channel, and a successful one answers
/// `hello` so the client also reads the TLS 1.3 tickets.
pub async fn serve(listener: Arc<ListenerTls>) -> (SocketAddr, Results) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = tcp.accept().await else {
                return;
            };
            let listener = listener.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match handshake::accept(sock, &listener).await {
                    Ok((mut stream, negotiated)) => {
                        let _ = tx.send(Ok(negotiated));
                        let _ = stream.write_all(b"hello").await;
                        let _ = stream.shutdown().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (addr, rx)
}

pub fn roots(cas: &[&Ca]) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in cas {
        r.add(c.der()).unwrap();
    }
    r
}

pub fn client_config(cas: &[&Ca]) -> ClientConfig {
    ClientConfig::builder_with_provider(hadeploy_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(cas))
        .with_no_client_auth()
}

/// What the client saw.
#[derive(Debug)]
pub struct Seen {
    pub leaf_cn: String,
    pub leaf_kind: Kind,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub version: rustls::ProtocolVersion,
}

/// Connects with `config` to `addr` naming `sni`, reads the server's
/// `hello`, and reports what was negotiated.
pub async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    sni: &str,
) -> Result<Seen, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("client handshake timed out")?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    assert_eq!(buf, b"hello");
    let conn = tls.get_ref().1;
    let leaf = conn.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let leaf_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let leaf_kind = if cert.public_key().algorithm.algorithm
        == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    {
        Kind::Ecdsa
    } else {
        Kind::Rsa
    };
    Ok(Seen {
        leaf_cn,
        leaf_kind,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        version: conn.protocol_version().unwrap(),
    })
}

/// A verifier that offers only the schemes `keep` accepts (to play a
/// client that supports RSA signatures only) and otherwise verifies
/// normally.
#[derive(Debug)]
pub struct OnlySchemes {
    pub inner: Arc<dyn ServerCertVerifier>,
    pub keep: fn(SignatureScheme) -> bool,
}

impl ServerCertVerifier for OnlySchemes {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner
            .supported_verify_schemes()
            .into_iter()
            .filter(|s| (self.keep)(*s))
            .collect()
    }
}

/// `openssl s_client` against `addr` with extra `args`; returns its
/// combined output and whether it exited 0. stdin is closed right away.
pub fn s_client(addr: SocketAddr, args: &[&str]) -> (String, bool) {
    let out = Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.success())
}
