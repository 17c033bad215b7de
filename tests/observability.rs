//! Operations features end to end: `/metrics` on the admin listener counts real requests with
//! the right labels (200, 401 missing / expired / bad signature, 403, 404, 502), TLS
//! handshakes, Redis store calls and the session cache; W3C `traceparent` reaches the upstream
//! (kept when well-formed, a new trace otherwise) with `tracestate` only beside a kept one;
//! with `[otlp]`, a span per request reaches a collector and is the upstream's parent.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use support::admin::{admin_get, samples};
use support::client::Proto;
use support::gateway::{now, redis_session, route, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;

async fn scrape(gw: &TestGateway) -> HashMap<String, f64> {
    let (status, ctype, body) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    samples(&body)
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_denials_and_handshakes_with_their_labels() {
    let up = Upstream::start().await;
    let dead = Upstream::refused_addr().await;
    let u = up.url();
    let routes = [
        route("/api/", &u, ""),
        route("/admin/", &u, "roles = [\"admin\"]"),
        route("/dead/", &format!("http://{dead}"), ""),
    ]
    .concat();
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    gw.create_session("s-alice", "alice", None).await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let t = now();
    let expired = gw.token_with(json!({
        "iss": "gateway", "aud": "api", "sub": "alice", "sid": "s-alice", "exp": t - 3600,
    }));
    // Flip the first character of the signature (the last one may only hold padding bits).
    let sig_at = token.rfind('.').unwrap() + 1;
    let mut tampered = token.clone();
    let flipped = if &token[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(sig_at..sig_at + 1, flipped);

    let before = scrape(&gw).await;
    let c = gw.client(Proto::H1);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    assert_eq!(c.get("/api/x", None).await.status, 401);
    assert_eq!(c.get("/api/x", Some(&expired)).await.status, 401);
    assert_eq!(c.get("/api/x", Some(&tampered)).await.status, 401);
    assert_eq!(c.get("/admin/x", Some(&token)).await.status, 403);
    assert_eq!(c.get("/nowhere", Some(&token)).await.status, 404);
    assert_eq!(c.get("/dead/x", Some(&token)).await.status, 502);
    let post = c
        .req("POST", "/api/x")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from_static(b"hi")))
        .unwrap();
    assert_eq!(c.send(post).await.status, 200);
    let h2 = gw.client(Proto::H2);
    assert_eq!(h2.get("/api/x", Some(&token)).await.status, 200);
    // A client that gives up in the middle of the handshake: a failed handshake.
    {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let _ = tcp.shutdown().await;
    }

    let want: &[(&str, f64)] = &[
        (
            r#"gateway_requests_total{route="/api",method="GET",status="200"}"#,
            3.0,
        ),
        (
            r#"gateway_requests_total{route="/api",method="POST",status="200"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="/api",method="GET",status="401"}"#,
            3.0,
        ),
        (
            r#"gateway_requests_total{route="/admin",method="GET",status="403"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="none",method="GET",status="404"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="/dead",method="GET",status="502"}"#,
            1.0,
        ),
        (r#"gateway_denials_total{reason="missing_token"}"#, 1.0),
        (r#"gateway_denials_total{reason="expired"}"#, 1.0),
        (r#"gateway_denials_total{reason="signature"}"#, 1.0),
        (r#"gateway_denials_total{reason="insufficient_scope"}"#, 1.0),
        (r#"gateway_denials_total{reason="not_found"}"#, 1.0),
        (
            r#"gateway_upstream_errors_total{route="/dead",kind="error"}"#,
            1.0,
        ),
        (
            r#"gateway_request_duration_seconds_count{route="/api",method="GET"}"#,
            6.0,
        ),
        (r#"gateway_tls_handshakes_total{result="ok"}"#, 10.0),
        // Valid-token requests read the session: 200 x4, 403, 404 is before auth, 502 after.
        (
            r#"gateway_session_store_duration_seconds_count{op="get"}"#,
            6.0,
        ),
    ];
    // The aborted handshake is counted when its task sees the EOF: poll briefly.
    let mut after = scrape(&gw).await;
    for _ in 0..50 {
        if get(&after, r#"gateway_tls_handshakes_total{result="failed"}"#)
            > get(&before, r#"gateway_tls_handshakes_total{result="failed"}"#)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&gw).await;
    }
    for (key, delta) in want {
        let moved = get(&after, key) - get(&before, key);
        assert_eq!(moved, *delta, "{key}: moved by {moved}, not {delta}");
    }
    assert!(
        get(&after, r#"gateway_tls_handshakes_total{result="failed"}"#)
            > get(&before, r#"gateway_tls_handshakes_total{result="failed"}"#),
        "the aborted handshake was not counted"
    );
    let expiry = get(&after, "gateway_tls_certificate_expiry_timestamp_seconds");
    assert!(expiry > now() as f64, "certificate expiry {expiry}");
    assert!(after.contains_key("gateway_open_connections"));
    // The store has no cache here (memory store): no cache series.
    assert!(!after.keys().any(|k| k.starts_with("gateway_session_cache")));
    // No label carries a token, a user id or a raw path.
    let (_, _, text) = admin_get(gw.admin.unwrap(), "/metrics").await;
    assert!(!text.contains(&token) && !text.contains("alice") && !text.contains("/nowhere"));
}

#[tokio::test]
async fn metrics_cover_redis_calls_and_the_session_cache() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &route("/api/", &up.url(), "")).await;
    let cache = gw.gw.auth().session_cache().expect("cache on by default");
    for _ in 0..100 {
        if cache.is_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.create_session("s1", "bob", None).await;
    let token = gw.token("bob", "s1", &[]);
    let c = gw.client(Proto::H2);
    for _ in 0..5 {
        assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    }
    let m = scrape(&gw).await;
    assert!(
        get(
            &m,
            r#"gateway_session_store_duration_seconds_count{op="get"}"#
        ) >= 1.0
    );
    assert!(
        get(&m, "gateway_session_cache_misses_total") >= 1.0,
        "{m:?}"
    );
    assert!(get(&m, "gateway_session_cache_hits_total") >= 1.0, "{m:?}");
    assert_eq!(get(&m, "gateway_session_cache_live"), 1.0);
    assert!(m.contains_key("gateway_session_cache_invalidations_total"));

    // Redis away: the store errors are counted, and requests are 503 store_unavailable.
    let mut redis = redis;
    redis.stop();
    let t2 = gw.token("bob", "s2", &[]);
    assert_eq!(c.get("/api/x", Some(&t2)).await.status, 503);
    let m = scrape(&gw).await;
    let errors: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gateway_session_store_errors_total{op=\"get\""))
        .map(|(_, v)| v)
        .sum();
    assert!(errors >= 1.0, "{m:?}");
    assert!(
        get(
            &m,
            r#"gateway_denials_total{reason="session_store_unavailable"}"#
        ) >= 1.0
    );
}

#[tokio::test]
async fn traceparent_is_kept_or_started_and_tracestate_follows_only_a_kept_one() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(
        MEMORY_SESSION,
        &route("/p/", &up.url(), "auth = \"public\""),
    )
    .await;
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for proto in [Proto::H1, Proto::H2] {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/p/x")
            .header("traceparent", good)
            .header("tracestate", "congo=t61rcWkgMzE")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(c.send(req).await.status, 200);
        let got = up.last();
        assert_eq!(got.one("traceparent").as_deref(), Some(good));
        assert_eq!(got.one("tracestate").as_deref(), Some("congo=t61rcWkgMzE"));

        let req = c
            .req("GET", "/p/x")
            .header("traceparent", "00-XYZ-bad-01")
            .header("tracestate", "congo=t61rcWkgMzE")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(c.send(req).await.status, 200);
        let got = up.last();
        let tp = got.one("traceparent").expect("a new traceparent");
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
        assert!(tp[3..35].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(got.one("tracestate"), None);

        assert_eq!(c.get("/p/x", None).await.status, 200);
        let fresh = up.last().one("traceparent").expect("a new traceparent");
        assert_ne!(fresh, tp, "each new trace has its own id");
    }
}

#[tokio::test]
async fn probes_and_metrics_answer_on_the_admin_listener() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/p/", &up.url(), "")).await;
    let admin = gw.admin.unwrap();
    assert_eq!(admin_get(admin, "/healthz").await.0, 200);
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);
    let (status, _, body) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("gateway_build_info{version="), "{body}");
    // The redirect listener does not serve metrics.
    let (status, _, _) = admin_get(gw.http.unwrap(), "/metrics").await;
    assert_eq!(status, 308);
}

/// A collector: records the body of every OTLP/HTTP export it receives.
async fn collector() -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        seen.lock().unwrap().push(body);
                        Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, bodies)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let v = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn spans_go_to_the_otlp_collector_and_parent_the_upstream() {
    let (addr, bodies) = collector().await;
    let up = Upstream::start().await;
    let otlp = format!(
        "[otlp]\nendpoint = \"http://{addr}/v1/traces\"\nservice_name = \"edge\"\ntimeout = \"2s\"\n"
    );
    let gw = TestGateway::start(
        &format!("{MEMORY_SESSION}\n{otlp}"),
        &route("/app", &up.url(), ""),
    )
    .await;
    gw.create_session("s1", "alice", Some(&["user"])).await;
    let token = gw.token("alice", "s1", &["user"]);
    let c = gw.client(Proto::H2);
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = c
        .req("GET", "/app/x")
        .header("traceparent", caller)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);
    let upstream_tp = up.last().one("traceparent").unwrap();
    assert_eq!(&upstream_tp[..36], &caller[..36], "same trace");
    assert_ne!(
        &upstream_tp[36..52],
        &caller[36..52],
        "the gateway's span is the parent"
    );
    assert_eq!(c.get("/app/x", None).await.status, 401);

    let otlp = gw.live.get().proxy.otlp.clone().unwrap();
    tokio::task::spawn_blocking(move || otlp.flush())
        .await
        .unwrap();
    let mut spans = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let req = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
        for rs in req.resource_spans {
            let service = rs.resource.as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|a| a.key == "service.name")
                    .cloned()
            });
            assert!(format!("{service:?}").contains("edge"), "{service:?}");
            spans.extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    assert_eq!(spans.len(), 2, "{spans:?}");
    let ok = spans
        .iter()
        .find(|s| attr(s, "http.response.status_code").as_deref() == Some("200"))
        .unwrap();
    assert_eq!(hex(&ok.trace_id), &caller[3..35]);
    assert_eq!(hex(&ok.parent_span_id), &caller[36..52]);
    assert_eq!(hex(&ok.span_id), &upstream_tp[36..52]);
    assert_eq!(ok.name, "GET /app");
    assert_eq!(attr(ok, "enduser.id").as_deref(), Some("alice"));
    let denied = spans
        .iter()
        .find(|s| attr(s, "http.response.status_code").as_deref() == Some("401"))
        .unwrap();
    assert!(
        denied.parent_span_id.is_empty(),
        "a new trace has no parent"
    );
    assert_eq!(
        attr(denied, "gateway.denial").as_deref(),
        Some("missing_token")
    );
    assert!(
        !format!("{spans:?}").contains(&token),
        "a token reached the collector"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
