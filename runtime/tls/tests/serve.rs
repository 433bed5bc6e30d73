//! Real TLS over loopback: the proxy side is `handshake::accept` over a
//! `CertStore`; the clients are rustls (tokio-rustls) and `openssl s_client`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hadeploy_tls::config::{ClientCertificates, TlsSettings, TlsVersion, VerifyClient};
use hadeploy_tls::handshake::{Alpn, HandshakeError};
use hadeploy_tls::server::ListenerTls;
use hadeploy_tls::store::{CertStore, SiteInput};
use rustls::SignatureScheme;
use rustls::client::WebPkiServerVerifier;
use rustls::version::TLS12;

struct Lab {
    _dir: tempfile::TempDir,
    ca: Ca,
    client_ca: Ca,
    store: CertStore,
}

/// Sites (store index: names -> leaf CNs):
/// 0 a: a.example.com -> a-ecdsa + a-rsa
/// 1 wild: *.example.com -> wild
/// 2 deep: *.b.example.com -> deep
/// 3 default: default.test (cert also covers other.test and 127.0.0.1)
/// 4 strict: strict.test, refuses unknown SNI when default
/// 5 modern: modern.test, TLS 1.3 only
/// 6 mtls: mtls.test, client certificate required
/// 7 mtls-opt: mtls-opt.test, client certificate optional
fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Test Root");
    let client_ca = Ca::new("Client Root");
    let client_ca_file = write(d, "client-ca.pem", &client_ca.pem());
    let leaf = |cn: &str, names: &[&str], kind| ca.leaf(&LeafSpec::new(cn, names, kind));
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut tls = [
        site_tls(vec![
            files(
                d,
                "a-rsa",
                &leaf("a-rsa", &["a.example.com"], Kind::Rsa),
                &[],
            ),
            files(
                d,
                "a-ec",
                &leaf("a-ecdsa", &["a.example.com"], Kind::Ecdsa),
                &[],
            ),
        ]),
        site_tls(vec![files(
            d,
            "w",
            &leaf("wild", &["*.example.com"], Kind::Ecdsa),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "deep",
            &leaf("deep", &["*.b.example.com"], Kind::Ecdsa),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "def",
            &leaf(
                "default",
                &["default.test", "other.test", "127.0.0.1"],
                Kind::Ecdsa,
            ),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "strict",
            &leaf("strict", &["strict.test", "other.test"], Kind::Ecdsa),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "modern",
            &leaf("modern", &["modern.test"], Kind::Ecdsa),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "mtls",
            &leaf("mtls", &["mtls.test"], Kind::Ecdsa),
            &[],
        )]),
        site_tls(vec![files(
            d,
            "mtlso",
            &leaf("mtls-opt", &["mtls-opt.test"], Kind::Ecdsa),
            &[],
        )]),
    ];
    tls[4].reject_unknown_sni = true;
    tls[5].min_version = TlsVersion::Tls13;
    for (i, verify) in [(6, VerifyClient::On), (7, VerifyClient::Optional)] {
        tls[i].client_certificates = Some(ClientCertificates {
            verify,
            ca_file: client_ca_file.clone(),
            subject_header: "X-SSL-Client-S-DN".into(),
        });
    }
    let server_names = [
        names(&["a.example.com"]),
        names(&["*.example.com"]),
        names(&["*.b.example.com"]),
        names(&["default.test"]),
        names(&["strict.test"]),
        names(&["modern.test"]),
        names(&["mtls.test"]),
        names(&["mtls-opt.test"]),
    ];
    let site_names = [
        "a", "wild", "deep", "default", "strict", "modern", "mtls", "mtls-opt",
    ];
    let inputs: Vec<SiteInput<'_>> = (0..tls.len())
        .map(|i| SiteInput {
            path: format!("sites[{i}]"),
            name: site_names[i],
            server_names: &server_names[i],
            tls: &tls[i],
        })
        .collect();
    let store = CertStore::load(&inputs, &TlsSettings::default(), "tls").unwrap();
    Lab {
        _dir: dir,
        ca,
        client_ca,
        store,
    }
}

fn listener(lab: &Lab, default: usize) -> Arc<ListenerTls> {
    Arc::new(
        lab.store
            .listener(&[0, 1, 2, 3, 4, 5, 6, 7], Some(default))
            .unwrap(),
    )
}

#[tokio::test]
async fn sni_selection_table() {
    let lab = lab();
    let (addr, mut results) = serve(listener(&lab, 3)).await;
    let client = Arc::new(client_config(&[&lab.ca]));
    for (sni, cn, site) in [
        ("a.example.com", "a-ecdsa", 0),
        ("A.EXAMPLE.COM", "a-ecdsa", 0),
        ("x.example.com", "wild", 1),
        ("x.b.example.com", "deep", 2), // the longer wildcard wins
        ("default.test", "default", 3),
        ("other.test", "default", 3), // unknown: the listener's default
        ("127.0.0.1", "default", 3),  // an IP: no SNI at all
    ] {
        let seen = connect(client.clone(), addr, sni).await.unwrap();
        assert_eq!(seen.leaf_cn, cn, "{sni}");
        let n = results.recv().await.unwrap().unwrap();
        assert_eq!(n.site, site, "{sni}");
        let want_sni = (sni != "127.0.0.1").then(|| sni.to_ascii_lowercase());
        assert_eq!(n.sni, want_sni);
    }
}

#[tokio::test]
async fn unknown_sni_is_refused_when_the_default_site_says_so() {
    let lab = lab();
    let (addr, mut results) = serve(listener(&lab, 4)).await;
    let client = Arc::new(client_config(&[&lab.ca]));
    let e = connect(client.clone(), addr, "other.test")
        .await
        .unwrap_err();
    // rustls answers a resolver without a certificate with access_denied
    // (nginx's ssl_reject_handshake: unrecognized_name).
    assert!(e.to_string().contains("AccessDenied"), "{e}");
    match results.recv().await.unwrap() {
        Err(HandshakeError::UnknownName { sni }) => assert_eq!(sni.as_deref(), Some("other.test")),
        other => panic!("{other:?}"),
    }
    // Known names are still served, the default's own name too.
    assert_eq!(
        connect(client.clone(), addr, "strict.test")
            .await
            .unwrap()
            .leaf_cn,
        "strict"
    );
    assert_eq!(
        connect(client, addr, "a.example.com")
            .await
            .unwrap()
            .leaf_cn,
        "a-ecdsa"
    );
    // No default at all: refused as well.
    let none = Arc::new(lab.store.listener(&[0], None).unwrap());
    let (addr, _r) = serve(none).await;
    let client = Arc::new(client_config(&[&lab.ca]));
    assert!(connect(client, addr, "default.test").await.is_err());
}

fn is_rsa(s: SignatureScheme) -> bool {
    use SignatureScheme::*;
    matches!(
        s,
        RSA_PSS_SHA256
            | RSA_PSS_SHA384
            | RSA_PSS_SHA512
            | RSA_PKCS1_SHA256
            | RSA_PKCS1_SHA384
            | RSA_PKCS1_SHA512
    )
}

#[tokio::test]
async fn a_client_offering_only_rsa_gets_the_rsa_certificate() {
    let lab = lab();
    let (addr, _r) = serve(listener(&lab, 3)).await;
    let inner = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(&[&lab.ca])),
        hadeploy_tls::provider(),
    )
    .build()
    .unwrap();
    for tls12 in [false, true] {
        let builder = rustls::ClientConfig::builder_with_provider(hadeploy_tls::provider());
        let builder = if tls12 {
            builder.with_protocol_versions(&[&TLS12]).unwrap()
        } else {
            builder.with_safe_default_protocol_versions().unwrap()
        };
        let rsa_only = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(OnlySchemes {
                inner: inner.clone(),
                keep: is_rsa,
            }))
            .with_no_client_auth();
        let seen = connect(Arc::new(rsa_only), addr, "a.example.com")
            .await
            .unwrap();
        assert_eq!(
            (seen.leaf_cn.as_str(), seen.leaf_kind),
            ("a-rsa", Kind::Rsa),
            "tls12={tls12}"
        );
    }
    let seen = connect(Arc::new(client_config(&[&lab.ca])), addr, "a.example.com")
        .await
        .unwrap();
    assert_eq!(
        (seen.leaf_cn.as_str(), seen.leaf_kind),
        ("a-ecdsa", Kind::Ecdsa)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_sees_the_same_selection() {
    let lab = lab();
    let (addr, _r) = serve(listener(&lab, 3)).await;
    let run =
        |args: &'static [&'static str]| tokio::task::spawn_blocking(move || s_client(addr, args));
    let (out, ok) = run(&[
        "-servername",
        "a.example.com",
        "-sigalgs",
        "rsa_pss_rsae_sha256:rsa_pkcs1_sha256",
    ])
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("subject=CN = a-rsa"), "{out}");
    let (out, ok) = run(&["-servername", "a.example.com", "-alpn", "h2,http/1.1"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("subject=CN = a-ecdsa"), "{out}");
    assert!(out.contains("New, TLSv1.3"), "{out}");
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    let (out, ok) = run(&["-servername", "x.b.example.com", "-tls1_2"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("subject=CN = deep"), "{out}");
    assert!(out.contains("New, TLSv1.2"), "{out}");
    // TLS 1.3-only site refuses openssl's TLS 1.2.
    let (out, ok) = run(&["-servername", "modern.test", "-tls1_2"])
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(
        out.contains("alert protocol version") || out.contains("protocol version"),
        "{out}"
    );
    // Old protocols are not offered at all.
    let (out, ok) = run(&["-servername", "a.example.com", "-tls1_1"])
        .await
        .unwrap();
    assert!(!ok, "{out}");
}

#[tokio::test]
async fn alpn_h2_then_http11() {
    let lab = lab();
    let (addr, mut results) = serve(listener(&lab, 3)).await;
    for (offer, want_client, want_server) in [
        (
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Some(b"h2".to_vec()),
            Alpn::H2,
        ),
        (
            vec![b"http/1.1".to_vec(), b"h2".to_vec()],
            Some(b"h2".to_vec()),
            Alpn::H2,
        ),
        (
            vec![b"http/1.1".to_vec()],
            Some(b"http/1.1".to_vec()),
            Alpn::Http11,
        ),
        (vec![], None, Alpn::None),
    ] {
        let mut config = client_config(&[&lab.ca]);
        config.alpn_protocols = offer.clone();
        let seen = connect(Arc::new(config), addr, "a.example.com")
            .await
            .unwrap();
        assert_eq!(seen.alpn, want_client, "{offer:?}");
        assert_eq!(results.recv().await.unwrap().unwrap().alpn, want_server);
    }
    // A client offering only an unknown protocol is refused (RFC 7301).
    let mut config = client_config(&[&lab.ca]);
    config.alpn_protocols = vec![b"spdy/3".to_vec()];
    assert!(
        connect(Arc::new(config), addr, "a.example.com")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn min_version_and_negotiated_names() {
    let lab = lab();
    let (addr, mut results) = serve(listener(&lab, 3)).await;
    let tls12_only = || {
        rustls::ClientConfig::builder_with_provider(hadeploy_tls::provider())
            .with_protocol_versions(&[&TLS12])
            .unwrap()
            .with_root_certificates(roots(&[&lab.ca]))
            .with_no_client_auth()
    };
    let e = connect(Arc::new(tls12_only()), addr, "modern.test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ProtocolVersion"), "{e}");
    assert!(matches!(
        results.recv().await.unwrap(),
        Err(HandshakeError::Io(_))
    ));
    // The default site accepts 1.2; the log names are OpenSSL's.
    let seen = connect(Arc::new(tls12_only()), addr, "a.example.com")
        .await
        .unwrap();
    assert_eq!(seen.version, rustls::ProtocolVersion::TLSv1_2);
    let n = results.recv().await.unwrap().unwrap();
    assert_eq!(n.protocol, "TLSv1.2");
    assert!(n.cipher.starts_with("ECDHE-ECDSA-"), "{}", n.cipher);
    let seen = connect(Arc::new(client_config(&[&lab.ca])), addr, "modern.test")
        .await
        .unwrap();
    assert_eq!(seen.version, rustls::ProtocolVersion::TLSv1_3);
    let n = results.recv().await.unwrap().unwrap();
    assert_eq!(n.protocol, "TLSv1.3");
    assert!(n.cipher.starts_with("TLS_"), "{}", n.cipher);
}

fn with_client_cert(lab: &Lab, ca: &Ca, cn: &str) -> rustls::ClientConfig {
    let mut spec = LeafSpec::new(cn, &[], Kind::Ecdsa);
    spec.client = true;
    let leaf = ca.leaf(&spec);
    let chain = hadeploy_tls::pem::certificates("c", leaf.cert_pem.as_bytes())
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let key = hadeploy_tls::pem::private_key("k", leaf.key_pem.as_bytes()).unwrap();
    rustls::ClientConfig::builder_with_provider(hadeploy_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&[&lab.ca]))
        .with_client_auth_cert(chain, key)
        .unwrap()
}

#[tokio::test]
async fn client_certificates_required_and_optional() {
    let lab = lab();
    let (addr, mut results) = serve(listener(&lab, 3)).await;
    let anonymous = Arc::new(client_config(&[&lab.ca]));
    let good = Arc::new(with_client_cert(&lab, &lab.client_ca, "client-1"));
    let stranger_ca = Ca::new("Stranger Root");
    let stranger = Arc::new(with_client_cert(&lab, &stranger_ca, "mallory"));

    // Required: no certificate -> refused; a good one -> its subject.
    let e = connect(anonymous.clone(), addr, "mtls.test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CertificateRequired"), "{e}");
    assert!(results.recv().await.unwrap().is_err());
    connect(good.clone(), addr, "mtls.test").await.unwrap();
    let n = results.recv().await.unwrap().unwrap();
    assert_eq!(n.client_subject.as_deref(), Some("CN=client-1"));
    assert!(connect(stranger.clone(), addr, "mtls.test").await.is_err());
    assert!(results.recv().await.unwrap().is_err());

    // Optional: none is fine, a bad one is not.
    connect(anonymous.clone(), addr, "mtls-opt.test")
        .await
        .unwrap();
    assert_eq!(results.recv().await.unwrap().unwrap().client_subject, None);
    connect(good, addr, "mtls-opt.test").await.unwrap();
    assert!(
        results
            .recv()
            .await
            .unwrap()
            .unwrap()
            .client_subject
            .is_some()
    );
    assert!(connect(stranger, addr, "mtls-opt.test").await.is_err());
    assert!(results.recv().await.unwrap().is_err());

    // Sites without client_certificates do not ask.
    connect(anonymous, addr, "a.example.com").await.unwrap();
    assert_eq!(results.recv().await.unwrap().unwrap().client_subject, None);
}

#[tokio::test]
async fn a_silent_client_hits_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Root");
    let tls = site_tls(vec![files(
        dir.path(),
        "s",
        &ca.leaf(&LeafSpec::new("s", &["s.test"], Kind::Ecdsa)),
        &[],
    )]);
    let names = vec!["s.test".to_string()];
    let settings = TlsSettings {
        handshake_timeout: Duration::from_millis(200),
        session_tickets: None,
    };
    let input = [SiteInput {
        path: "sites[0]".into(),
        name: "s",
        server_names: &names,
        tls: &tls,
    }];
    let store = CertStore::load(&input, &settings, "tls").unwrap();
    let (addr, mut results) = serve(Arc::new(store.listener(&[0], Some(0)).unwrap())).await;
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    match results.recv().await.unwrap() {
        Err(HandshakeError::Timeout(d)) => assert_eq!(d, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}
