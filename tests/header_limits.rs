//! docs/contract.md, "Details users rely on", request headers above `[limits]`: the gateway's own JSON 431 with
//! `X-Request-Id` and `Cache-Control: no-store` on HTTP/1.1 and HTTP/2 (and from curl, which
//! honours SETTINGS_MAX_HEADER_LIST_SIZE), counted in `/metrics` and the access log; the same
//! answer on the plain listeners; beyond the backstop, the HTTP layer's bare refusal.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::admin::{admin_call, admin_get, samples};
use support::client::{raw_status, Proto, BOTH};
use support::gateway::{route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;

async fn setup() -> (TestGateway, Upstream) {
    let up = Upstream::start().await;
    let u = up.url();
    let routes = [
        route("/api/", &u, ""),
        route("/public/", &u, "auth = \"public\""),
    ]
    .concat();
    (TestGateway::start(MEMORY_SESSION, &routes).await, up)
}

/// Extra headers for each way over the default limits (32 KiB, 100 fields).
fn over_the_limit() -> Vec<(&'static str, Vec<(String, String)>)> {
    vec![
        // 40 KiB in one header.
        ("bytes", vec![("x-big".into(), "a".repeat(40 * 1024))]),
        // 40 headers of 1 KiB.
        (
            "bytes-spread",
            (0..40)
                .map(|i| (format!("x-b{i}"), "b".repeat(1024)))
                .collect(),
        ),
        // 150 tiny headers: few bytes, too many fields.
        (
            "count",
            (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect(),
        ),
    ]
}

#[tokio::test]
async fn headers_over_the_limit_get_the_json_431_counted_and_logged() {
    let capture = support::logs::capture();
    let logs = &capture.logs;

    let (gw, up) = setup().await;
    let metric = r#"gateway_requests_total{route="none",method="GET",status="431"}"#;
    let denial = r#"gateway_denials_total{reason="headers_too_large"}"#;
    let scrape = || async {
        let (_, _, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
        let m = samples(&text);
        (
            m.get(metric).copied().unwrap_or(0.0),
            m.get(denial).copied().unwrap_or(0.0),
        )
    };
    let before = scrape().await;
    let mut refused = 0.0;
    for proto in BOTH {
        let c = gw.client(proto);
        // Within the limit: served (30 KiB in one header; 85 headers, as the test upstream
        // takes at most 100 with the forwarding headers).
        let mut b = c
            .req("GET", "/public/x")
            .header("x-fits", "a".repeat(30 * 1024));
        assert_eq!(
            c.send(b.body(Full::new(Bytes::new())).unwrap())
                .await
                .status,
            200,
            "{proto:?}"
        );
        b = c.req("GET", "/public/x");
        for i in 0..85 {
            b = b.header(format!("x-h{i}"), "v");
        }
        let r = c.send(b.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(r.status, 200, "{proto:?}: {r:?}");
        let served = up.count();
        for (case, extra) in over_the_limit() {
            // On a protected route without a token: 431 comes before everything else.
            for path in ["/public/x", "/api/x"] {
                let rid = format!("hl-{proto:?}-{case}-{}", path.len());
                let mut b = c.req("GET", path).header("x-request-id", rid.as_str());
                for (n, v) in &extra {
                    b = b.header(n.as_str(), v.as_str());
                }
                let r = c.send(b.body(Full::new(Bytes::new())).unwrap()).await;
                let what = format!("{proto:?} {case} {path}");
                assert_eq!(r.status, 431, "{what}: {:?}", r.body);
                assert_eq!(r.error_code(), "headers_too_large", "{what}");
                assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
                assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
                assert_eq!(r.header("x-request-id"), Some(rid.as_str()), "{what}");
                let line = logs.access_line(&rid);
                assert_eq!(line["status"], 431, "{what}: {line}");
                assert_eq!(line["denial"], "headers_too_large", "{what}: {line}");
                refused += 1.0;
            }
        }
        assert_eq!(
            up.count(),
            served,
            "{proto:?}: a refused request was forwarded"
        );
    }
    let after = scrape().await;
    assert_eq!(after.0 - before.0, refused, "{metric}");
    assert_eq!(after.1 - before.1, refused, "{denial}");
}

#[tokio::test]
async fn curl_sends_headers_over_the_limit_and_reads_the_json_431() {
    if !support::curl::available() {
        return;
    }
    let (gw, up) = setup().await;
    let big = format!("X-Big: {}", "a".repeat(40 * 1024));
    for proto in ["--http2", "--http1.1"] {
        let r = support::curl::run(gw.https, "/api/x", &[proto, "-H", &big]).await;
        assert_eq!((r.rc, r.status), (0, 431), "{proto}: {r:?}");
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "headers_too_large", "{proto}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn the_plain_listeners_answer_over_limit_headers_with_the_json_431() {
    let (gw, _up) = setup().await;
    let big = "a".repeat(40 * 1024);
    for (listener, path) in [
        (gw.admin.unwrap(), "/healthz"),
        (gw.admin.unwrap(), "/metrics"),
        (gw.http.unwrap(), "/x"),
        (gw.http.unwrap(), "/healthz"),
    ] {
        let headers = [("x-big", big.as_str()), ("x-request-id", "plain-431")];
        let (status, h, body) = admin_call(listener, "GET", path, &headers, None).await;
        assert_eq!(status, 431, "{listener} {path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "headers_too_large");
        assert_eq!(h["x-request-id"], "plain-431");
        assert_eq!(h["cache-control"], "no-store");
        // Within the limit, the same listener answers as usual.
        let (status, _, _) = admin_call(listener, "GET", path, &[], None).await;
        assert!(
            status == 200 || status == 308,
            "{listener} {path}: {status}"
        );
    }
}

#[tokio::test]
async fn beyond_the_backstop_the_http_layer_refuses_the_head() {
    let (gw, up) = setup().await;
    // Twice the 32 KiB limit is the backstop: past it hyper answers a bare 431 and closes.
    let huge = "a".repeat(70 * 1024);
    let raw = format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\nX-Huge: {huge}\r\n\r\n");
    let answer = gw
        .client(Proto::H1)
        .raw_h1(raw.as_bytes(), Duration::from_secs(10))
        .await;
    assert_eq!(raw_status(&answer), 431, "{answer:.300}");
    assert!(!answer.contains("headers_too_large"), "{answer:.300}");
    // And past 200 fields.
    let many: String = (0..250).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\n{many}\r\n");
    let answer = gw
        .client(Proto::H1)
        .raw_h1(raw.as_bytes(), Duration::from_secs(10))
        .await;
    assert_eq!(raw_status(&answer), 431, "{answer:.300}");
    assert!(!answer.contains("headers_too_large"), "{answer:.300}");
    // HTTP/2: h2 answers a bare 431 (or the client refuses to send it); never served.
    let c = gw.client(Proto::H2);
    let req = c
        .req("GET", "/public/x")
        .header("x-huge", huge.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(c.tls().await))
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("an h2 answer within 10 s");
    if let Ok(resp) = r {
        assert_eq!(resp.status(), 431);
        assert!(resp.headers().get("x-request-id").is_none());
    }
    assert_eq!(up.count(), 0);
}
