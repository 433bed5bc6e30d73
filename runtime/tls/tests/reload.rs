//! Reload: build -> validate -> swap. A new certificate is served to new
//! connections; a set that fails to load is refused with an error naming
//! the field and file, and the old one keeps serving; tickets survive.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hadeploy_tls::LoadError;
use hadeploy_tls::config::{CertificatePaths, SessionTickets, TlsSettings};
use hadeploy_tls::handshake;
use hadeploy_tls::live::{ListenerSpec, Live, TlsSet};
use hadeploy_tls::store::{CertStore, SiteInput};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const ADDR: &str = "127.0.0.1:8443"; // the listener's key in the set, not bound

fn build(paths: &CertificatePaths, ticket_key: &Path) -> Result<TlsSet, LoadError> {
    let names = vec!["app.test".to_string()];
    let tls = site_tls(vec![paths.clone()]);
    let settings = TlsSettings {
        handshake_timeout: Duration::from_secs(5),
        session_tickets: Some(SessionTickets {
            key_files: vec![ticket_key.to_path_buf()],
            lifetime: Duration::from_secs(600),
        }),
    };
    let input = [SiteInput {
        path: "sites[0]".into(),
        name: "app",
        server_names: &names,
        tls: &tls,
    }];
    let store = CertStore::load(&input, &settings, "tls")?;
    TlsSet::build(
        store,
        &[ListenerSpec {
            addr: ADDR.parse().unwrap(),
            sites: vec![0],
            default: Some(0),
        }],
    )
}

/// Like `common::serve`, but each accept takes the live set's current
/// listener, as the proxy will.
async fn serve_live(live: Arc<Live<TlsSet>>) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let key: SocketAddr = ADDR.parse().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = tcp.accept().await {
            let set = live.current();
            tokio::spawn(async move {
                let listener = set.listener(&key).unwrap();
                if let Ok((mut s, _)) = handshake::accept(sock, listener).await {
                    let _ = s.write_all(b"hello").await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn new_certificates_are_served_and_a_bad_set_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Root");
    let ticket_key = write(d, "ticket.key", &"k".repeat(80));
    let v1 = files(
        d,
        "v1",
        &ca.leaf(&LeafSpec::new("v1", &["app.test"], Kind::Ecdsa)),
        &[],
    );
    let v2 = files(
        d,
        "v2",
        &ca.leaf(&LeafSpec::new("v2", &["app.test"], Kind::Rsa)),
        &[],
    );
    let live = Arc::new(Live::new(build(&v1, &ticket_key).unwrap()));
    let addr = serve_live(live.clone()).await;
    let client = Arc::new(client_config(&[&ca]));
    assert_eq!(
        connect(client.clone(), addr, "app.test")
            .await
            .unwrap()
            .leaf_cn,
        "v1"
    );

    live.reload(|| build(&v2, &ticket_key)).unwrap();
    // A fresh client (a resumed session reports the certificate it was
    // first authenticated with, v1: that is TLS, not a stale store).
    let fresh = || Arc::new(client_config(&[&ca]));
    let seen = connect(fresh(), addr, "app.test").await.unwrap();
    assert_eq!((seen.leaf_cn.as_str(), seen.resumed), ("v2", false));

    // v2's key replaced by another key: refused, v2 still served.
    let other = ca.leaf(&LeafSpec::new("other", &["app.test"], Kind::Ecdsa));
    let broken = CertificatePaths {
        chain: v2.chain.clone(),
        key: files(d, "other", &other, &[]).key,
    };
    let e = live.reload(|| build(&broken, &ticket_key)).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "sites[0].tls.certificates[0]: {}: ",
            v2.chain.display()
        )),
        "{e}"
    );
    // Garbage in place of a chain: refused as well, naming the block.
    let garbage = CertificatePaths {
        chain: write(
            d,
            "garbage.crt",
            "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n",
        ),
        key: v2.key.clone(),
    };
    let e = live.reload(|| build(&garbage, &ticket_key)).unwrap_err();
    assert!(
        e.to_string().contains("block 1 (line 1): invalid base64"),
        "{e}"
    );
    assert_eq!(
        connect(fresh(), addr, "app.test").await.unwrap().leaf_cn,
        "v2"
    );
    // The ticket key files did not change: the first client's session
    // survives both reloads.
    let after = connect(client, addr, "app.test").await.unwrap();
    assert!(after.resumed, "resumed across reloads");
}
