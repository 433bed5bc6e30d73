//! TLS to upstreams: verification on by default (given CA or system
//! roots), SNI on by default, optional client certificate. The upstream is
//! a loopback server running this crate's own accept path, so it reports
//! the SNI and client subject it saw.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use hadeploy_tls::config::{
    CertificatePaths, ClientCertificates, SiteTls, TlsSettings, UpstreamTls, VerifyClient,
};
use hadeploy_tls::store::{CertStore, SiteInput};
use hadeploy_tls::upstream::UpstreamClient;
use tokio::io::AsyncReadExt;

struct Upstream {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    client_ca: Ca,
    dir_path: std::path::PathBuf,
}

/// An upstream whose certificate (from "Upstream Root", or self-signed)
/// covers backend.test and 127.0.0.1; it asks for an optional client
/// certificate from "Client Root".
async fn upstream(self_signed: bool) -> (Upstream, SocketAddr, Results) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let ca = Ca::new("Upstream Root");
    let client_ca = Ca::new("Client Root");
    let cert = if self_signed {
        // A self-signed leaf, as a backend's default install has.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec!["backend.test".into(), "127.0.0.1".into()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "backend.test");
        let c = p.self_signed(&key).unwrap();
        Leaf {
            cert_pem: c.pem(),
            key_pem: key.serialize_pem(),
        }
    } else {
        ca.leaf(&LeafSpec::new(
            "backend",
            &["backend.test", "127.0.0.1"],
            Kind::Ecdsa,
        ))
    };
    let mut tls: SiteTls = site_tls(vec![files(&d, "backend", &cert, &[])]);
    tls.client_certificates = Some(ClientCertificates {
        verify: VerifyClient::Optional,
        ca_file: write(&d, "client-ca.pem", &client_ca.pem()),
        subject_header: "X-Client".into(),
    });
    let names = vec!["backend.test".to_string()];
    let input = [SiteInput {
        path: "sites[0]".into(),
        name: "backend",
        server_names: &names,
        tls: &tls,
    }];
    let store = CertStore::load(&input, &TlsSettings::default(), "tls").unwrap();
    let (addr, results) = serve(Arc::new(store.listener(&[0], Some(0)).unwrap())).await;
    let ca_file = write(&d, "upstream-ca.pem", &ca.pem());
    (
        Upstream {
            _dir: dir,
            ca_file,
            client_ca,
            dir_path: d,
        },
        addr,
        results,
    )
}

async fn talk(
    client: &UpstreamClient,
    addr: SocketAddr,
) -> Result<(), hadeploy_tls::upstream::UpstreamTlsError> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = client.connect(tcp, addr).await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.unwrap();
    assert_eq!(buf, b"hello");
    Ok(())
}

#[tokio::test]
async fn verified_with_the_given_ca_sni_sent_by_default() {
    let (up, addr, mut seen) = upstream(false).await;
    let tls = UpstreamTls {
        ca_file: Some(up.ca_file.clone()),
        server_name: Some("backend.test".into()),
        ..UpstreamTls::default()
    };
    talk(
        &UpstreamClient::new("upstreams.app.tls", &tls).unwrap(),
        addr,
    )
    .await
    .unwrap();
    let n = seen.recv().await.unwrap().unwrap();
    assert_eq!(n.sni.as_deref(), Some("backend.test"));
    assert_eq!(n.client_subject, None);

    // SNI off: still verified against backend.test, nothing sent.
    let no_sni = UpstreamTls {
        sni: false,
        ..tls.clone()
    };
    talk(&UpstreamClient::new("u", &no_sni).unwrap(), addr)
        .await
        .unwrap();
    assert_eq!(seen.recv().await.unwrap().unwrap().sni, None);

    // No server_name: the address is verified (IP SAN), no SNI.
    let by_ip = UpstreamTls {
        server_name: None,
        ..tls.clone()
    };
    talk(&UpstreamClient::new("u", &by_ip).unwrap(), addr)
        .await
        .unwrap();
    assert_eq!(seen.recv().await.unwrap().unwrap().sni, None);

    // A name the certificate does not cover fails, naming host and name.
    let wrong = UpstreamTls {
        server_name: Some("other.test".into()),
        ..tls
    };
    let e = talk(&UpstreamClient::new("u", &wrong).unwrap(), addr)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("TLS to upstream {addr} (verifying other.test)")),
        "{text}"
    );
    assert!(
        matches!(
            e.tls_error(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )) | Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
            ))
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_self_signed_upstream_fails_against_system_roots() {
    let (_up, addr, mut seen) = upstream(true).await;
    let tls = UpstreamTls {
        server_name: Some("backend.test".into()),
        ..UpstreamTls::default()
    };
    let client = UpstreamClient::new("upstreams.app.tls", &tls).unwrap();
    let e = talk(&client, addr).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("{addr} (verifying backend.test)")),
        "{text}"
    );
    assert!(
        text.contains("invalid peer certificate: UnknownIssuer"),
        "{text}"
    );
    assert!(
        seen.recv().await.unwrap().is_err(),
        "the upstream saw the refusal"
    );
    // verify: false accepts it (the handshake signature is still checked).
    let off = UpstreamTls {
        verify: false,
        ..tls
    };
    talk(&UpstreamClient::new("u", &off).unwrap(), addr)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_certificate_reaches_the_upstream() {
    let (up, addr, mut seen) = upstream(false).await;
    let mut spec = LeafSpec::new("proxy-node-1", &[], Kind::Ecdsa);
    spec.client = true;
    let leaf = up.client_ca.leaf(&spec);
    let paths: CertificatePaths = files(&up.dir_path, "proxy-client", &leaf, &[]);
    let tls = UpstreamTls {
        ca_file: Some(up.ca_file.clone()),
        server_name: Some("backend.test".into()),
        client_certificate: Some(paths),
        ..UpstreamTls::default()
    };
    talk(&UpstreamClient::new("u", &tls).unwrap(), addr)
        .await
        .unwrap();
    let n = seen.recv().await.unwrap().unwrap();
    assert_eq!(n.client_subject.as_deref(), Some("CN=proxy-node-1"));
}

#[test]
fn load_errors_name_the_field_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "ca.pem", "not a pem\n");
    let tls = UpstreamTls {
        ca_file: Some(garbage.clone()),
        ..UpstreamTls::default()
    };
    let e = UpstreamClient::new("upstreams.app.tls", &tls)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "upstreams.app.tls.ca_file: {}: no CERTIFICATE block found",
            garbage.display()
        )
    );
}
