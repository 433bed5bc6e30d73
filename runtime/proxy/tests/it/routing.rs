//! Virtual hosts, locations and `proxy.uri`.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_and_location_precedence() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let root = tempfile::tempdir().expect("tmp");
    std::fs::write(root.path().join("index.html"), "default site\n").expect("write");
    let yaml = format!(
        r#"
node: test
upstreams:
  a:
    servers: [{{address: "{a}"}}]
  b:
    servers: [{{address: "{b}"}}]
sites:
  - name: first
    listen: ["127.0.0.1:{port}"]
    server_names: [www.example.com]
    locations:
      - path: /
        proxy: {{upstream: a}}
      - path: /api/
        proxy: {{upstream: b, uri: /}}
      - path: /api/
        match: exact
        proxy: {{upstream: a}}
      - path: /api/v2/
        proxy: {{upstream: a, uri: /version2/}}
  - name: wildcard
    listen: ["127.0.0.1:{port}"]
    server_names: ["*.example.com"]
    locations:
      - path: /
        proxy: {{upstream: b}}
  - name: dflt
    listen: ["127.0.0.1:{port}"]
    default_server: true
    root: {root}
"#,
        a = a.addr,
        b = b.addr,
        root = root.path().display()
    );
    let (_p, _stop, _h) = start_proxy(config(&yaml)).await;
    let c = client();
    // (host, path) -> (backend or "static", path the backend saw)
    let table = [
        ("www.example.com", "/", "a", "/"),
        ("www.example.com", "/x?q=1", "a", "/x?q=1"),
        ("www.example.com", "/api/", "a", "/api/"),
        ("www.example.com", "/api/users?id=7", "b", "/users?id=7"),
        ("www.example.com", "/api/v2/items", "a", "/version2/items"),
        ("www.example.com", "/apix", "a", "/apix"),
        ("WWW.EXAMPLE.COM:80", "/api/z", "b", "/z"),
        ("shop.example.com", "/api/x", "b", "/api/x"),
        ("example.com", "/", "static", ""),
        ("other.test", "/", "static", ""),
    ];
    for (host, path, want, seen_path) in table {
        let g = get(&c, port, host, path).await;
        assert_eq!(g.status, 200, "{host}{path}");
        if want == "static" {
            assert_eq!(g.body, "default site\n", "{host}{path}");
            continue;
        }
        let e = Echo::parse(&g.body);
        assert_eq!(e.backend, want, "{host}{path}");
        assert_eq!(e.request_line, format!("GET {seen_path}"), "{host}{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listener_routes_by_local_address() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let yaml = format!(
        r#"
node: test
upstreams:
  a:
    servers: [{{address: "{a}"}}]
  b:
    servers: [{{address: "{b}"}}]
sites:
  - name: any
    listen: ["0.0.0.0:{port}"]
    locations:
      - path: /
        proxy: {{upstream: a}}
  - name: specific
    listen: ["127.0.0.1:{port}"]
    locations:
      - path: /
        proxy: {{upstream: b}}
"#,
        a = a.addr,
        b = b.addr
    );
    let (p, _stop, _h) = start_proxy(config(&yaml)).await;
    assert_eq!(
        p.listen_addrs(),
        vec![format!("0.0.0.0:{port}").parse().expect("addr")]
    );
    let c = client();
    let via = |ip: &'static str| {
        let c = c.clone();
        async move {
            let req = http::Request::get(format!("http://{ip}:{port}/"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("req");
            Echo::parse(&send(&c, req).await.expect("req").body).backend
        }
    };
    assert_eq!(via("127.0.0.1").await, "b");
    assert_eq!(via("127.0.0.2").await, "a");
}
