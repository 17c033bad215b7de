//! The network edge (docs/contract.md, "Forwarding headers and the client's address" and
//! "Identity headers after a rename"; section 6's Host and idle-connection rows), over real
//! TLS on HTTP/1.1 and HTTP/2: which forwarding headers the upstream sees from trusted and
//! untrusted peers, the client address the login lockout and the access log key on, the PROXY
//! protocol before TLS, connections that never send a request, and strict `Host`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde_json::json;
use support::client::{connector, raw_status, Proto, BOTH};
use support::gateway::{base_toml, redis_session, route, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `base_toml` with `listen_extra` lines in `[listen]` and `headers` replacing `[headers]`.
fn toml_with(listen_extra: &str, session: &str, routes: &str) -> String {
    let base = base_toml("").replacen("[listen]\n", &format!("[listen]\n{listen_extra}\n"), 1);
    format!("{base}\n{session}\n{routes}")
}

async fn start(listen_extra: &str, up: &Upstream) -> TestGateway {
    let routes = [
        route("/api/", &up.url(), ""),
        route("/public/", &up.url(), "auth = \"public\""),
    ]
    .concat();
    TestGateway::start_toml(&toml_with(listen_extra, MEMORY_SESSION, &routes)).await
}

/// Every spelling of every forwarding header a client could try.
const SPOOFED: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.66"),
    ("x-forwarded-for", "198.51.100.66, 10.0.0.1"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-FORWARDED-PROTO", "http"),
    ("X-Forwarded-Port", "80"),
    ("Forwarded", "for=203.0.113.66;proto=http;host=evil.example"),
    ("forwarded", "for=\"[2001:db8::66]\""),
    ("X-Real-IP", "203.0.113.66"),
    ("x-real-ip", "198.51.100.66"),
    ("X_Forwarded_For", "203.0.113.67"),
    ("x_real_ip", "203.0.113.67"),
];

async fn get_public(gw: &TestGateway, proto: Proto, headers: &[(&str, &str)]) -> u16 {
    let c = gw.client(proto);
    let mut b = c.req("GET", "/public/x");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    c.send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn an_untrusted_peer_cannot_set_any_forwarding_header() {
    let up = Upstream::start().await;
    // 10.0.0.0/8 is trusted, but the test client connects from 127.0.0.1.
    let gw = start("trusted_proxies = [\"10.0.0.0/8\"]", &up).await;
    for proto in BOTH {
        assert_eq!(get_public(&gw, proto, SPOOFED).await, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(got.all("x-forwarded-for"), ["127.0.0.1"], "{proto:?}");
        assert_eq!(got.all("x-real-ip"), ["127.0.0.1"], "{proto:?}");
        assert_eq!(got.all("x-forwarded-host"), ["localhost"], "{proto:?}");
        assert_eq!(got.all("x-forwarded-proto"), ["https"], "{proto:?}");
        assert!(got.all("x-forwarded-port").is_empty(), "{proto:?}");
        assert!(got.all("forwarded").is_empty(), "{proto:?}");
        let underscored: Vec<String> = got
            .names()
            .into_iter()
            .filter(|n| n.contains('_'))
            .collect();
        assert!(underscored.is_empty(), "{proto:?}: {underscored:?}");
    }
}

#[tokio::test]
async fn a_trusted_peer_has_its_forwarded_for_appended_to() {
    let up = Upstream::start().await;
    let gw = start("trusted_proxies = [\"127.0.0.1/32\"]", &up).await;
    let chain = [("X-Forwarded-For", "198.51.100.7, 10.1.2.3")];
    for proto in BOTH {
        assert_eq!(get_public(&gw, proto, &chain).await, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(
            got.all("x-forwarded-for"),
            ["198.51.100.7, 10.1.2.3, 127.0.0.1"],
            "{proto:?}"
        );
        // 10.1.2.3 is not trusted: it is the nearest untrusted address, so the client.
        assert_eq!(got.all("x-real-ip"), ["10.1.2.3"], "{proto:?}");
        // Only X-Forwarded-For is believed from a proxy; the rest are the gateway's own.
        assert_eq!(get_public(&gw, proto, SPOOFED).await, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(got.all("x-forwarded-host"), ["localhost"], "{proto:?}");
        assert!(got.all("forwarded").is_empty(), "{proto:?}");
    }
}

/// Unknown-user logins (always 401) from behind a trusted proxy, or not.
async fn failed_login(gw: &TestGateway, proto: Proto, xff: &str) {
    let c = gw.client(proto);
    let body = json!({ "username": "nobody", "password": "wrong password" }).to_string();
    let req = c
        .req("POST", "/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", xff)
        .header("x-real-ip", "192.0.2.99")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 401, "{proto:?}: {:?}", r.body);
}

fn counter(redis: &RedisServer, key: &str) -> Option<i64> {
    let mut con = redis.connection();
    redis::cmd("GET").arg(key).query(&mut con).unwrap()
}

#[tokio::test]
async fn the_lockout_counts_the_client_behind_a_trusted_proxy_only() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let routes = route("/api/", &up.url(), "");
    let session = redis_session(&redis.url());
    let trusted = toml_with("trusted_proxies = [\"127.0.0.1\"]", &session, &routes);
    let gw = TestGateway::start_toml(&trusted).await;
    for proto in BOTH {
        failed_login(&gw, proto, "203.0.113.1, 198.51.100.7").await;
    }
    assert_eq!(counter(&redis, "gw:login-fail:addr:198.51.100.7"), Some(2));
    for ip in ["127.0.0.1", "203.0.113.1", "192.0.2.99"] {
        assert_eq!(counter(&redis, &format!("gw:login-fail:addr:{ip}")), None);
    }
    gw.stop().await;

    // Without trusted_proxies the same headers are the client's own words: the TCP peer counts.
    let _ = redis::cmd("FLUSHALL").query::<()>(&mut redis.connection());
    let untrusted = toml_with("", &session, &routes);
    let gw = TestGateway::start_toml(&untrusted).await;
    for proto in BOTH {
        failed_login(&gw, proto, "198.51.100.7").await;
    }
    assert_eq!(counter(&redis, "gw:login-fail:addr:127.0.0.1"), Some(2));
    assert_eq!(counter(&redis, "gw:login-fail:addr:198.51.100.7"), None);
}

#[tokio::test]
async fn the_access_log_names_the_resolved_client() {
    let capture = support::logs::capture();
    let logs = &capture.logs;
    let up = Upstream::start().await;
    let gw = start("trusted_proxies = [\"127.0.0.0/8\"]", &up).await;
    let xff = [
        ("X-Forwarded-For", "198.51.100.23"),
        ("X-Request-Id", "edge-log-1"),
    ];
    assert_eq!(get_public(&gw, Proto::H1, &xff).await, 200);
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("edge-log-1"))
        .unwrap_or_else(|| panic!("no access log line in {text}"));
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["peer"], "198.51.100.23", "{line}");
}

/// A TLS connection that first writes `prefix` on the TCP stream (a PROXY header).
async fn tls_after(
    gw: &TestGateway,
    prefix: &[u8],
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut tcp = TcpStream::connect(gw.https).await?;
    tcp.write_all(prefix).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector(&gw.cert(), &[alpn]).connect(name, tcp);
    tokio::time::timeout(Duration::from_secs(10), tls)
        .await
        .map_err(|_| std::io::Error::other("TLS handshake hung"))?
}

/// `GET /public/x` over a connection that starts with `prefix`; the upstream's request.
async fn get_after(
    gw: &TestGateway,
    up: &Upstream,
    prefix: &[u8],
    proto: Proto,
) -> support::upstream::Recorded {
    let alpn: &[u8] = match proto {
        Proto::H1 => b"http/1.1",
        Proto::H2 => b"h2",
    };
    let io = TokioIo::new(tls_after(gw, prefix, alpn).await.expect("TLS after PROXY"));
    let req = gw
        .client(proto)
        .req("GET", "/public/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = match proto {
        Proto::H1 => {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        }
        Proto::H2 => {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        }
    };
    assert_eq!(resp.status(), 200, "{proto:?}");
    let _ = resp.into_body().collect().await;
    up.last()
}

fn v2_header(command: u8, addr: &[u8]) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.push(0x20 | command);
    b.push(if addr.is_empty() { 0x00 } else { 0x11 });
    b.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    b.extend_from_slice(addr);
    b
}

const PROXY_ON: &str = "trusted_proxies = [\"127.0.0.1\"]\nproxy_protocol = true";

#[tokio::test]
async fn proxy_protocol_v1_and_v2_give_the_client_address() {
    let up = Upstream::start().await;
    let gw = start(PROXY_ON, &up).await;
    let v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1 51000 443\r\n".to_vec();
    let v1_six = b"PROXY TCP6 2001:db8::7 ::1 51000 443\r\n".to_vec();
    let v2 = v2_header(1, &[203, 0, 113, 9, 127, 0, 0, 1, 0xc7, 0x38, 0x01, 0xbb]);
    for proto in BOTH {
        let got = get_after(&gw, &up, &v1, proto).await;
        assert_eq!(got.all("x-forwarded-for"), ["198.51.100.7"], "{proto:?}");
        let got = get_after(&gw, &up, &v1_six, proto).await;
        assert_eq!(got.all("x-forwarded-for"), ["2001:db8::7"], "{proto:?}");
        let got = get_after(&gw, &up, &v2, proto).await;
        assert_eq!(got.all("x-forwarded-for"), ["203.0.113.9"], "{proto:?}");
        // LOCAL (a load balancer's own health check) and UNKNOWN: the TCP peer stands.
        let got = get_after(&gw, &up, &v2_header(0, &[]), proto).await;
        assert_eq!(got.all("x-forwarded-for"), ["127.0.0.1"], "{proto:?}");
        let got = get_after(&gw, &up, b"PROXY UNKNOWN\r\n", proto).await;
        assert_eq!(got.all("x-forwarded-for"), ["127.0.0.1"], "{proto:?}");
    }
}

fn failed_handshakes(gw: &TestGateway) -> f64 {
    let text = gw.gw.metrics().encode().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"gateway_tls_handshakes_total{result="failed"} "#))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn proxy_protocol_refuses_connections_without_a_valid_header_before_tls() {
    let up = Upstream::start().await;
    let gw = start(PROXY_ON, &up).await;
    let before = failed_handshakes(&gw);
    let bad: &[&[u8]] = &[
        b"",
        b"GET / HTTP/1.1\r\n\r\n",
        b"PROXY TCP4 198.51.100.7 127.0.0.1 51000\r\n",
        b"PROXY TCP4 999.51.100.7 127.0.0.1 51000 443\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ];
    for prefix in bad {
        let r = tls_after(&gw, prefix, b"http/1.1").await;
        assert!(
            r.is_err(),
            "{:?} let TLS through",
            String::from_utf8_lossy(prefix)
        );
    }
    assert_eq!(up.count(), 0);
    assert!(failed_handshakes(&gw) >= before + bad.len() as f64);

    // A valid header from a peer outside trusted_proxies is refused all the same.
    let gw = start(
        "trusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true",
        &up,
    )
    .await;
    let v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1 51000 443\r\n";
    assert!(tls_after(&gw, v1, b"h2").await.is_err());
    assert_eq!(up.count(), 0);
}

/// Completes the TLS handshake, sends nothing, and waits (at most 15 s) for the gateway to
/// close: header_timeout is 2 s in the test config.
async fn closed_while_silent(gw: &TestGateway, alpn: &[u8]) -> bool {
    let mut tls = tls_after(gw, b"", alpn).await.expect("TLS");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // HTTP/2 SETTINGS, GOAWAY
            }
        }
    });
    read.await.is_ok()
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    assert!(closed_while_silent(&gw, b"http/1.1").await, "HTTP/1.1");
    assert!(closed_while_silent(&gw, b"h2").await, "HTTP/2, no preface");

    // HTTP/2 with the preface and SETTINGS (hyper's client sends them) but no stream.
    let tls = tls_after(&gw, b"", b"h2").await.expect("TLS");
    let (_send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(15), conn).await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection without a stream stayed open"
    );
}

#[tokio::test]
async fn a_request_slower_than_header_timeout_is_not_cut_as_idle() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    for proto in BOTH {
        // The upstream holds /slow/ for 3 s; header_timeout is 2 s.
        let r = gw.client(proto).get("/public/slow/x", None).await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(&r.body[..], br#"{"ok":true}"#, "{proto:?}");
    }
}

#[tokio::test]
async fn host_must_be_one_valid_host() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    let c = gw.client(Proto::H1);
    for host in [
        "a, b",
        "localhost, localhost",
        "user@localhost",
        "localhost/public",
        "localhost:99999",
        "localhost:0",
        "localhost:",
        "local host",
        "[::1",
    ] {
        let raw = format!("GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 400, "{host:?}: {answer}");
        assert!(answer.contains("bad_host"), "{host:?}: {answer}");
    }
    let raw = "GET /public/x HTTP/1.1\r\nHost: localhost:8443\r\nConnection: close\r\n\r\n";
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");

    // HTTP/2: the same rules on `:authority`.
    let c = gw.client(Proto::H2);
    let mut sent = 0;
    for authority in ["user@localhost", "localhost:0", "localhost:99999"] {
        let Ok(uri) = format!("https://{authority}/public/x").parse::<http::Uri>() else {
            continue;
        };
        sent += 1;
        let req = http::Request::builder()
            .uri(uri)
            .version(http::Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 400, "{authority:?}");
        assert_eq!(r.error_code(), "bad_host", "{authority:?}");
    }
    assert!(sent >= 2, "the http crate refused the test authorities");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn the_redirect_listener_refuses_a_bad_host() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    for (host, want) in [
        ("a, b", 400),
        ("a/path", 400),
        ("user@a", 400),
        ("localhost", 308),
    ] {
        let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
        let raw = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
        let answer = String::from_utf8_lossy(&out);
        assert_eq!(raw_status(&answer), want, "{host:?}: {answer}");
    }
    // An IPv6 literal keeps one pair of brackets in Location.
    let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
    tcp.write_all(b"GET /x HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    let answer = String::from_utf8_lossy(&out).to_lowercase();
    let port = gw.https.port();
    assert!(
        answer.contains(&format!("location: https://[::1]:{port}/x\r\n")),
        "{answer}"
    );
}

#[tokio::test]
async fn renamed_identity_headers_still_strip_the_usual_names() {
    let up = Upstream::start().await;
    let routes = route("/api/", &up.url(), "");
    let toml = toml_with("", MEMORY_SESSION, &routes).replace(
        "user_id = \"X-User-Id\"\nroles = \"X-User-Roles\"\nsession_id = \"X-Session-Id\"",
        "user_id = \"X-Auth-User\"\nroles = \"X-Auth-Roles\"\nsession_id = \"X-Auth-Session\"",
    );
    let gw = TestGateway::start_toml(&toml).await;
    gw.create_session("s-alice", "alice", None).await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let spoofed = [
        ("X-User-Id", "root"),
        ("x-user-id", "root"),
        ("X_User_Id", "root"),
        ("X-USER-ROLES", "admin"),
        ("x_user_roles", "admin"),
        ("X-Session-Id", "s-root"),
        ("X-Auth-User", "root"),
        ("Connection", "X-Auth-User, X-User-Id"),
    ];
    for proto in BOTH {
        let c = gw.client(proto);
        let mut b = c
            .req("GET", "/api/x")
            .header("authorization", format!("Bearer {token}"));
        for (n, v) in spoofed {
            if proto == Proto::H2 && n == "Connection" {
                continue; // not allowed in HTTP/2
            }
            b = b.header(n, v);
        }
        let r = c.send(b.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(r.status, 200, "{proto:?}: {:?}", r.body);
        let got = up.last();
        assert_eq!(got.all("x-auth-user"), ["alice"], "{proto:?}");
        assert_eq!(got.all("x-auth-roles"), ["user"], "{proto:?}");
        assert_eq!(got.all("x-auth-session"), ["s-alice"], "{proto:?}");
        for name in got.names() {
            let folded = name.replace('_', "-");
            assert!(
                !["x-user-id", "x-user-roles", "x-session-id"].contains(&folded.as_str()),
                "{proto:?}: {name} reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn ip_binding_uses_the_client_behind_a_trusted_proxy() {
    use support::auth::{add_user, call};
    const PW: &str = "correct horse battery staple";
    let redis = RedisServer::start();
    add_user(&redis, "carol", PW, &[]);
    let up = Upstream::start().await;
    let routes = route("/api/", &up.url(), "");
    let toml = toml_with(
        "trusted_proxies = [\"127.0.0.1\"]",
        &redis_session(&redis.url()),
        &routes,
    )
    .replacen(
        "signing_kid = \"k1\"\n",
        "signing_kid = \"k1\"\nbind_refresh = \"ip\"\n",
        1,
    );
    let gw = TestGateway::start_toml(&toml).await;
    let c = gw.client(Proto::H2);
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let login = json!({ "username": "carol", "password": PW, "device_id": "laptop" });
    let r = call(
        &c,
        "POST",
        "/auth/login",
        Some(login),
        None,
        &from("198.51.100.7"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (sid, first) = (
        r.json()["session_id"].as_str().unwrap().to_owned(),
        r.json()["refresh_token"].as_str().unwrap().to_owned(),
    );
    let recorded: Option<String> = redis::cmd("HGET")
        .arg(format!("gw:session:{sid}"))
        .arg("ip")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(recorded.as_deref(), Some("198.51.100.7"));

    let body = |t: &str| Some(json!({ "refresh_token": t, "device_id": "laptop" }));
    // The same client through the proxy: bound address matches.
    let r = call(
        &c,
        "POST",
        "/auth/refresh",
        body(&first),
        None,
        &from("198.51.100.7"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let second = r.json()["refresh_token"].as_str().unwrap().to_owned();
    // Another client behind the same proxy (same TCP peer): refused.
    let r = call(
        &c,
        "POST",
        "/auth/refresh",
        body(&second),
        None,
        &from("203.0.113.5"),
    )
    .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
}

/// The plain listeners (redirect and admin) close a connection that sends nothing, and one
/// left idle after a request, within `header_timeout` (2 s in these tests), like the TLS one.
#[tokio::test]
async fn plain_listeners_close_silent_connections() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    for addr in [gw.http.expect("http listener"), gw.admin.expect("admin")] {
        // Silent from the start.
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{addr}: a silent connection stayed open"
        );
        // Idle after one keep-alive request.
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "{addr}: an idle keep-alive connection stayed open"
        );
        assert!(got.starts_with(b"HTTP/1.1 200"), "{addr}: {got:?}");
    }
}

/// An unreadable entry a client put in `X-Forwarded-For` (a proxy merges it into one line
/// with its own entry) does not hide the proxy's entry: the client is still the address the
/// trusted proxy named, never the proxy itself.
#[tokio::test]
async fn an_unreadable_forwarded_for_entry_does_not_make_the_client_the_proxy() {
    let up = Upstream::start().await;
    let gw = start("trusted_proxies = [\"127.0.0.1/32\"]", &up).await;
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/public/x")
            .header(
                "x-forwarded-for",
                http::HeaderValue::from_bytes(b"\x80, 10.1.2.3").unwrap(),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(c.send(req).await.status, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(got.all("x-real-ip"), ["10.1.2.3"], "{proto:?}");
        assert_eq!(
            got.all("x-forwarded-for"),
            ["unknown, 10.1.2.3, 127.0.0.1"],
            "{proto:?}"
        );
    }
}

/// The redirect listener reads `Host` as strictly as the TLS listener: two of them is 400
/// (not a redirect to the first), and a target that is not a path redirects to the root.
#[tokio::test]
async fn the_redirect_listener_reads_one_host_only() {
    let up = Upstream::start().await;
    let gw = start("", &up).await;
    let ask = |raw: &'static str| {
        let addr = gw.http.unwrap();
        async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(raw.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).to_lowercase()
        }
    };
    let two =
        ask("GET /x HTTP/1.1\r\nHost: good\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(raw_status(&two), 400, "{two}");
    assert!(!two.contains("evil.example"), "{two}");
    let star = ask("OPTIONS * HTTP/1.1\r\nHost: good\r\nConnection: close\r\n\r\n").await;
    assert_eq!(raw_status(&star), 308, "{star}");
    let port = gw.https.port();
    assert!(
        star.contains(&format!("location: https://good:{port}/\r\n")),
        "{star}"
    );
}

/// `listen.redirect_port` names the public https port in the plain listener's 308 (behind a
/// Service or load balancer that maps 443 to the listener's own port); 443 is left out.
#[tokio::test]
async fn redirect_port_names_the_public_port() {
    let up = Upstream::start().await;
    for (port, want) in [("443", "https://good/x"), ("9443", "https://good:9443/x")] {
        let gw = start(&format!("redirect_port = {port}"), &up).await;
        let mut tcp = TcpStream::connect(gw.http.unwrap()).await.unwrap();
        tcp.write_all(b"GET /x HTTP/1.1\r\nHost: good:8080\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
        let answer = String::from_utf8_lossy(&out).to_lowercase();
        assert_eq!(raw_status(&answer), 308, "{answer}");
        assert!(
            answer.contains(&format!("location: {want}\r\n")),
            "{port}: {answer}"
        );
    }
}
