//! Header rewriting, Host policy and WebSocket passthrough.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

fn yaml(port: u16, backend: std::net::SocketAddr, trusted: &str, proxy_extra: &str) -> String {
    format!(
        r#"
node: test
trusted_proxies: [{trusted}]
upstreams:
  backend:
    servers: [{{address: "{backend}"}}]
sites:
  - name: site
    listen: ["127.0.0.1:{port}"]
    locations:
      - path: /
        proxy:
          upstream: backend
{proxy_extra}
"#
    )
}

fn hop_request(port: u16, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", "client.example")
        .header("connection", "keep-alive, x-hop-req")
        .header("x-hop-req", "secret")
        .header("keep-alive", "timeout=300")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .expect("req")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_untrusted_xff() {
    let be = Backend::start("be").await;
    let port = free_port();
    let (_p, _stop, _h) = start_proxy(config(&yaml(port, be.addr, "", ""))).await;
    let c = client();
    let g = send(&c, hop_request(port, "/hop")).await.expect("req");
    assert_eq!(g.status, 200);
    let e = Echo::parse(&g.body);
    for h in [
        "x-hop-req",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert!(
            e.header(h).is_none(),
            "{h} reached the backend: {:?}",
            e.headers
        );
    }
    assert_eq!(e.header("x-end-to-end"), Some("kept"));
    assert_eq!(e.header("host"), Some("client.example"));
    // Untrusted peer: its X-Forwarded-For and -Proto are replaced.
    assert_eq!(e.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(e.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(e.header("x-forwarded-proto"), Some("http"));
    // Response side.
    for h in ["x-hop-resp", "keep-alive", "proxy-authenticate"] {
        assert!(!g.headers.contains_key(h), "{h} reached the client");
    }
    assert_eq!(g.headers["x-end-to-end"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_xff_is_appended() {
    let be = Backend::start("be").await;
    let port = free_port();
    let (_p, _stop, _h) = start_proxy(config(&yaml(port, be.addr, "127.0.0.0/8", ""))).await;
    let c = client();
    let g = send(&c, hop_request(port, "/")).await.expect("req");
    let e = Echo::parse(&g.body);
    assert_eq!(e.header("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(e.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(e.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_policies_and_set_headers() {
    let be = Backend::start("be").await;
    let c = client();
    let cases = [
        ("", "client.example".to_string()),
        ("          host: upstream\n", be.addr.to_string()),
        (
            "          host: !fixed internal.svc\n",
            "internal.svc".to_string(),
        ),
    ];
    for (extra, want) in cases {
        let port = free_port();
        let extra = format!(
            "{extra}          set_headers:\n            x-added: yes-1\n            x-end-to-end: \"\"\n"
        );
        let (_p, stop, h) = start_proxy(config(&yaml(port, be.addr, "", &extra))).await;
        let g = send(&c, hop_request(port, "/")).await.expect("req");
        let e = Echo::parse(&g.body);
        assert_eq!(e.header("host"), Some(want.as_str()), "{extra}");
        assert_eq!(e.header("x-added"), Some("yes-1"));
        assert_eq!(
            e.header("x-end-to-end"),
            None,
            "empty set_headers value removes"
        );
        drop(stop);
        h.await.expect("run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_proxy() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ws_addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    let port = free_port();
    let (_p, _stop, _h) = start_proxy(config(&yaml(port, ws_addr, "", ""))).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("ws connect through proxy");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}")))
            .await
            .expect("send");
        let m = ws.next().await.expect("msg").expect("ok");
        assert_eq!(m.into_text().expect("text").as_str(), format!("hello {i}"));
    }
    ws.close(None).await.expect("close");
}
