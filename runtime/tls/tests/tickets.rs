//! Failover resumption: a ticket issued by "node A" (one `CertStore`)
//! resumes on "node B" (another store, its own configs and session cache)
//! built from the same ticket key file, and not on a node with other keys.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hadeploy_tls::config::{SessionTickets, SiteTls, TlsSettings};
use hadeploy_tls::server::ListenerTls;
use hadeploy_tls::store::{CertStore, SiteInput};
use rustls::version::TLS12;

fn key_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let out = std::process::Command::new("openssl")
        .args(["rand", &len.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), len);
    let p = dir.join(name);
    std::fs::write(&p, out.stdout).unwrap();
    p
}

fn node(tls: &SiteTls, keys: &[PathBuf]) -> Arc<ListenerTls> {
    let names = vec!["app.test".to_string()];
    let settings = TlsSettings {
        handshake_timeout: Duration::from_secs(5),
        session_tickets: Some(SessionTickets {
            key_files: keys.to_vec(),
            lifetime: Duration::from_secs(3600),
        }),
    };
    let input = [SiteInput {
        path: "sites[0]".into(),
        name: "app",
        server_names: &names,
        tls,
    }];
    let store = CertStore::load(&input, &settings, "tls").unwrap();
    Arc::new(store.listener(&[0], Some(0)).unwrap())
}

#[tokio::test]
async fn a_ticket_from_node_a_resumes_on_node_b_and_not_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Root");
    let tls = site_tls(vec![files(
        d,
        "app",
        &ca.leaf(&LeafSpec::new("app", &["app.test"], Kind::Ecdsa)),
        &[],
    )]);
    let shared = key_file(d, "current.key", 80);
    let other = key_file(d, "other.key", 80);
    let next = key_file(d, "next.key", 48);

    let (a, mut ra) = serve(node(&tls, std::slice::from_ref(&shared))).await;
    let (b, mut rb) = serve(node(&tls, std::slice::from_ref(&shared))).await;
    let (c, _rc) = serve(node(&tls, std::slice::from_ref(&other))).await;
    // Rotated: a new key encrypts, the previous one still decrypts.
    let (r, _rr) = serve(node(&tls, &[next, shared.clone()])).await;

    let tls13 = || Arc::new(client_config(&[&ca]));
    let tls12 = || {
        Arc::new(
            rustls::ClientConfig::builder_with_provider(hadeploy_tls::provider())
                .with_protocol_versions(&[&TLS12])
                .unwrap()
                .with_root_certificates(roots(&[&ca]))
                .with_no_client_auth(),
        )
    };
    for (label, client) in [("TLS 1.3", tls13()), ("TLS 1.2", tls12())] {
        // Each client config has its own session cache: start fresh on A.
        let first = connect(client.clone(), a, "app.test").await.unwrap();
        assert!(!first.resumed, "{label}: first contact is a full handshake");
        assert!(!ra.recv().await.unwrap().unwrap().resumed);
        // The VIP moves: the same client now reaches B.
        let on_b = connect(client.clone(), b, "app.test").await.unwrap();
        assert!(on_b.resumed, "{label}: resumed on the second node");
        assert!(
            rb.recv().await.unwrap().unwrap().resumed,
            "{label}: server agrees"
        );
    }
    for (label, client) in [("TLS 1.3", tls13()), ("TLS 1.2", tls12())] {
        connect(client.clone(), a, "app.test").await.unwrap();
        let on_c = connect(client.clone(), c, "app.test").await.unwrap();
        assert!(!on_c.resumed, "{label}: other keys cannot read A's ticket");
    }
    for (label, client) in [("TLS 1.3", tls13()), ("TLS 1.2", tls12())] {
        connect(client.clone(), a, "app.test").await.unwrap();
        let on_r = connect(client.clone(), r, "app.test").await.unwrap();
        assert!(on_r.resumed, "{label}: the previous key still decrypts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_resumes_across_nodes_with_a_saved_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let ca = Ca::new("Root");
    let tls = site_tls(vec![files(
        &d,
        "app",
        &ca.leaf(&LeafSpec::new("app", &["app.test"], Kind::Ecdsa)),
        &[],
    )]);
    let shared = key_file(&d, "current.key", 80);
    let other = key_file(&d, "other.key", 80);
    let (a, _ra) = serve(node(&tls, std::slice::from_ref(&shared))).await;
    let (b, _rb) = serve(node(&tls, std::slice::from_ref(&shared))).await;
    let (c, _rc) = serve(node(&tls, &[other])).await;
    let sess = d.join("sess.pem").display().to_string();
    let run = move |addr, flag: &'static str, version: &'static str| {
        let sess = sess.clone();
        tokio::task::spawn_blocking(move || {
            s_client(
                addr,
                &["-servername", "app.test", version, "-ign_eof", flag, &sess],
            )
        })
    };
    for version in ["-tls1_3", "-tls1_2"] {
        let (out, ok) = run(a, "-sess_out", version).await.unwrap();
        assert!(ok && out.contains("New, TLSv1."), "{out}");
        let (out, ok) = run(b, "-sess_in", version).await.unwrap();
        assert!(
            ok && out.contains("Reused, TLSv1."),
            "{version} on B: {out}"
        );
        let (out, ok) = run(c, "-sess_in", version).await.unwrap();
        assert!(ok && out.contains("New, TLSv1."), "{version} on C: {out}");
    }
}
