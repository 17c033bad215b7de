//! docs/contract.md, "What a request gets", row by row, against a real upstream over real TLS, on HTTP/1.1 and
//! HTTP/2. The session store here is the memory store; Redis faults are in redis_faults.rs.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use support::client::{raw_status, Proto, BOTH};
use support::gateway::{now, route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;

async fn setup() -> (TestGateway, Upstream) {
    let up = Upstream::start().await;
    let u = up.url();
    let routes = [
        route("/api/", &u, ""),
        route("/api/v2/", &u, "strip_prefix = true"),
        route("/admin/", &u, "roles = [\"admin\"]"),
        route("/public/", &u, "auth = \"public\""),
        route("/maybe/", &u, "auth = \"optional\""),
        route("/ro/", &u, "methods = [\"GET\", \"HEAD\"]"),
        route("/fwd/", &u, "forward_token = true"),
        route("/small/", &u, "max_body = 1024"),
    ]
    .concat();
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    gw.create_session("s-alice", "alice", None).await;
    (gw, up)
}

fn body(b: &'static str) -> Full<Bytes> {
    Full::new(Bytes::from_static(b.as_bytes()))
}

#[tokio::test]
async fn a_valid_token_gets_through_with_identity_headers() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user", "dev"]);
    for proto in BOTH {
        let c = gw.client(proto);
        let r = c.get("/api/hello?x=1", Some(&token)).await;
        assert_eq!(r.status, 200, "{proto:?}: {:?}", r.body);
        assert!(r.header("x-request-id").is_some());
        let got = up.last();
        assert_eq!(got.target, "/api/hello?x=1");
        assert_eq!(got.one("x-user-id").as_deref(), Some("alice"));
        assert_eq!(got.one("x-user-roles").as_deref(), Some("user,dev"));
        assert_eq!(got.one("x-session-id").as_deref(), Some("s-alice"));
        assert_eq!(got.one("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(got.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(got.one("x-forwarded-host").as_deref(), Some("localhost"));
        assert!(got.one("x-request-id").is_some());
        assert_eq!(got.one("authorization"), None, "token must not go upstream");
    }
}

#[tokio::test]
async fn no_token_is_401_with_realm_and_nothing_forwarded() {
    let (gw, up) = setup().await;
    for proto in BOTH {
        let r = gw.client(proto).get("/api/x", None).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="gateway""#)
        );
        assert_eq!(r.error_code(), "missing_token");
        assert!(r.header("x-request-id").is_some());
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn invalid_tokens_are_401_invalid_token() {
    let (gw, up) = setup().await;
    let t = now();
    let valid = gw.token("alice", "s-alice", &[]);
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let (h, rest) = valid.split_once('.').unwrap();
    let _ = h;
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = rest.split('.').next().unwrap();
    let cases = vec![
        ("tampered", tampered),
        ("alg none", format!("{none_header}.{payload}.")),
        ("garbage", "not.a.jwt".to_string()),
        ("expired", gw.token_with(json!({"iss":"gateway","aud":"api","sub":"alice","sid":"s-alice","exp": t - 3600}))),
        ("not yet valid", gw.token_with(json!({"iss":"gateway","aud":"api","sub":"alice","sid":"s-alice","nbf": t + 3600,"exp": t + 7200}))),
        ("wrong iss", gw.token_with(json!({"iss":"evil","aud":"api","sub":"alice","sid":"s-alice","exp": t + 600}))),
        ("wrong aud", gw.token_with(json!({"iss":"gateway","aud":"other","sub":"alice","sid":"s-alice","exp": t + 600}))),
        ("no exp", gw.token_with(json!({"iss":"gateway","aud":"api","sub":"alice","sid":"s-alice"}))),
        ("no sid", gw.token_with(json!({"iss":"gateway","aud":"api","sub":"alice","exp": t + 600}))),
        ("numeric sub", gw.token_with(json!({"iss":"gateway","aud":"api","sub":42,"sid":"s-alice","exp": t + 600}))),
        ("too large", gw.token_with(json!({"iss":"gateway","aud":"api","sub":"alice","sid":"s-alice","exp": t + 600, "pad": "x".repeat(9000)}))),
        ("unknown session", gw.token("alice", "s-nobody", &[])),
        ("session of another user", gw.token("mallory", "s-alice", &[])),
    ];
    for proto in BOTH {
        for (name, token) in &cases {
            let r = gw.client(proto).get("/api/x", Some(token)).await;
            assert_eq!(r.status, 401, "{proto:?} {name}");
            assert_eq!(
                r.header("www-authenticate"),
                Some(r#"Bearer realm="gateway", error="invalid_token""#),
                "{proto:?} {name}"
            );
            assert!(
                !String::from_utf8_lossy(&r.body).contains(token.as_str()),
                "{name}: body echoes the token"
            );
        }
    }
    assert_eq!(up.count(), 0);
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test]
async fn token_from_cookie_and_ambiguity() {
    let (gw, up) = setup().await;
    gw.create_session("s-bob", "bob", None).await;
    let alice = gw.token("alice", "s-alice", &[]);
    let bob = gw.token("bob", "s-bob", &[]);
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/api/c")
            .header("cookie", format!("theme=dark; __Host-gw_access={alice}"))
            .body(body(""))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(got.one("x-user-id").as_deref(), Some("alice"));
        let cookies = got.all("cookie").join("; ");
        assert!(cookies.contains("theme=dark"), "{cookies}");
        assert!(
            !cookies.contains("__Host-gw_access"),
            "token cookie must be removed: {cookies}"
        );

        // A header and a different cookie: ambiguous.
        let req = c
            .req("GET", "/api/c")
            .header("authorization", format!("Bearer {bob}"))
            .header("cookie", format!("__Host-gw_access={alice}"))
            .body(body(""))
            .unwrap();
        assert_eq!(c.send(req).await.status, 401, "{proto:?}");

        // Two Authorization headers: ambiguous.
        let req = c
            .req("GET", "/api/c")
            .header("authorization", format!("Bearer {alice}"))
            .header("authorization", format!("Bearer {bob}"))
            .body(body(""))
            .unwrap();
        assert_eq!(c.send(req).await.status, 401, "{proto:?}");

        // Scheme is case-insensitive.
        let req = c
            .req("GET", "/api/c")
            .header("authorization", format!("bEaReR {alice}"))
            .body(body(""))
            .unwrap();
        assert_eq!(c.send(req).await.status, 200, "{proto:?}");
    }
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let spoofs = [
        ("x-user-id", "admin"),
        ("X-USER-ID", "admin2"),
        ("x_user_id", "admin3"),
        ("X_User_Roles", "admin"),
        ("x-user-roles", "admin"),
        ("x-session-id", "s-admin"),
        ("x-user_id", "admin4"),
    ];
    for proto in BOTH {
        let c = gw.client(proto);
        for (path, tok) in [
            ("/public/x", None),
            ("/api/x", Some(&token)),
            ("/maybe/x", None),
        ] {
            let mut b = c.req("GET", path);
            for (n, v) in spoofs {
                b = b.header(n, v);
            }
            b = b
                .header("x-user-roles", "admin")
                .header("x-user-roles", "root");
            if let Some(t) = tok {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let r = c.send(b.body(body("")).unwrap()).await;
            assert_eq!(r.status, 200, "{proto:?} {path}");
            let got = up.last();
            for name in got.names() {
                let folded = name.replace('_', "-");
                if ["x-user-id", "x-user-roles", "x-session-id"].contains(&folded.as_str()) {
                    assert_eq!(
                        name, folded,
                        "{proto:?} {path}: underscore spelling {name} passed"
                    );
                }
            }
            match tok {
                Some(_) => {
                    assert_eq!(got.all("x-user-id"), vec!["alice"], "{proto:?} {path}");
                    assert_eq!(got.all("x-user-roles"), vec!["user"], "{proto:?} {path}");
                    assert_eq!(got.all("x-session-id"), vec!["s-alice"], "{proto:?} {path}");
                }
                None => {
                    assert!(got.all("x-user-id").is_empty(), "{proto:?} {path}");
                    assert!(got.all("x-user-roles").is_empty(), "{proto:?} {path}");
                    assert!(got.all("x-session-id").is_empty(), "{proto:?} {path}");
                }
            }
        }
    }
}

#[tokio::test]
async fn connection_header_cannot_drop_or_keep_identity() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let c = gw.client(Proto::H1);
    let req = c
        .req("GET", "/api/x")
        .header("authorization", format!("Bearer {token}"))
        .header(
            "connection",
            "keep-alive, X-User-Id, x-user-roles, X-Forwarded-For, X-Request-Id",
        )
        .header("x-user-id", "admin")
        .header("x-forwarded-for", "10.9.9.9")
        .body(body(""))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 200);
    let got = up.last();
    assert_eq!(got.all("x-user-id"), vec!["alice"]);
    assert_eq!(got.all("x-user-roles"), vec!["user"]);
    assert_eq!(got.one("connection"), None);
    assert!(got.one("x-request-id").is_some());
    assert!(got.one("x-forwarded-for").unwrap().ends_with("127.0.0.1"));
}

#[tokio::test]
async fn public_and_optional_routes() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &[]);
    for proto in BOTH {
        let c = gw.client(proto);
        // public: forwarded, no identity, even with a bad token.
        let r = c.get("/public/p", Some("garbage")).await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert!(up.last().all("x-user-id").is_empty());
        // optional: anonymous without token, identity with one, 401 with a bad one.
        assert_eq!(c.get("/maybe/p", None).await.status, 200);
        assert!(up.last().all("x-user-id").is_empty());
        assert_eq!(c.get("/maybe/p", Some(&token)).await.status, 200);
        assert_eq!(up.last().all("x-user-id"), vec!["alice"]);
        assert_eq!(c.get("/maybe/p", Some("garbage")).await.status, 401);
    }
}

#[tokio::test]
async fn routing_longest_prefix_404_405_and_strip_prefix() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &[]);
    for proto in BOTH {
        let c = gw.client(proto);
        let r = c.get("/nowhere", Some(&token)).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.error_code(), "not_found");
        // "/apix" is not under "/api".
        assert_eq!(c.get("/apix", Some(&token)).await.status, 404);
        // Longest prefix, stripped.
        assert_eq!(c.get("/api/v2/items", Some(&token)).await.status, 200);
        assert_eq!(up.last().target, "/items");
        // 405 before authentication, with Allow.
        let r = c
            .send(c.req("POST", "/ro/x").body(body("x")).unwrap())
            .await;
        assert_eq!(r.status, 405, "{proto:?}");
        let allow = r.header("allow").unwrap().to_owned();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    }
}

#[tokio::test]
async fn roles_from_session_win_and_missing_role_is_403() {
    let (gw, up) = setup().await;
    gw.create_session("s-admin", "root", Some(&["admin"])).await;
    gw.create_session("s-demoted", "eve", Some(&[])).await;
    let admin = gw.token("root", "s-admin", &[]);
    let demoted = gw.token("eve", "s-demoted", &["admin"]);
    let plain = gw.token("alice", "s-alice", &["user"]);
    let via_token = gw.token("alice", "s-alice", &["admin"]);
    for proto in BOTH {
        let c = gw.client(proto);
        let r = c.get("/admin/x", Some(&admin)).await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(up.last().all("x-user-roles"), vec!["admin"]);
        let r = c.get("/admin/x", Some(&demoted)).await;
        assert_eq!(
            r.status, 403,
            "{proto:?}: the session's empty roles must win"
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="gateway", error="insufficient_scope""#)
        );
        assert_eq!(c.get("/admin/x", Some(&plain)).await.status, 403);
        // The session has no roles field: the token's roles apply.
        assert_eq!(c.get("/admin/x", Some(&via_token)).await.status, 200);
    }
}

#[tokio::test]
async fn deleting_the_session_logs_out_at_once() {
    let (gw, _up) = setup().await;
    gw.create_session("s-gone", "alice", None).await;
    let token = gw.token("alice", "s-gone", &[]);
    let c = gw.client(Proto::H2);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    assert_eq!(gw.delete_session("s-gone").await, 204);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 401);
}

#[tokio::test]
async fn path_spellings_cannot_reach_a_protected_route_unauthenticated() {
    let (gw, up) = setup().await;
    let c = gw.client(Proto::H1);
    let cases: &[(&str, u16)] = &[
        ("/public/../admin/x", 401),
        ("/public/%2e%2e/admin/x", 401),
        ("/public/%2E%2E/api/x", 401),
        ("/public/.%2e/api/x", 401),
        ("/public/./../api/x", 401),
        ("/public%2f..%2fapi/x", 400),
        ("/public/..%2fapi/x", 400),
        ("/public/..%5capi/x", 400),
        ("/public/..\\api/x", 400),
        ("/public/..;/api/x", 400),
        ("/public/%2e%2e;/api/x", 400),
        ("/admin;x/secret", 400),
        ("/public/x;jsessionid=1", 400),
        ("/public/%c0%ae%c0%ae/api/x", 400),
        ("/public/%00/x", 400),
        ("/../api/x", 400),
        ("//public//..//api/x", 401),
    ];
    for (path, want) in cases {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), *want, "{path}: {answer}");
    }
    assert_eq!(up.count(), 0, "nothing may reach the upstream");
    // The upstream receives the normalised path that was authorised.
    let raw =
        "GET /public/a/./b/../c/%7Euser HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(up.last().target, "/public/a/c/~user");
}

#[tokio::test]
async fn host_must_be_present_once() {
    let (gw, up) = setup().await;
    let c = gw.client(Proto::H1);
    let cases: &[(&str, u16)] = &[
        ("GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        (
            "GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET https://other/public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            200,
        ),
    ];
    for (raw, want) in cases {
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), *want, "{raw:?}: {answer}");
    }
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (gw, up) = setup().await;
    let big = "a".repeat(40 * 1024);
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/public/x")
            .header("x-big", big.as_str())
            .body(body(""))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 431, "{proto:?}");
        assert_eq!(r.error_code(), "headers_too_large", "{proto:?}");
        assert!(r.header("x-request-id").is_some(), "{proto:?}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{proto:?}");
    }
    // Raw HTTP/1.1 too: the gateway's JSON, not hyper's bare answer.
    let raw = format!(
        "GET /public/x HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let answer = gw
        .client(Proto::H1)
        .raw_h1(raw.as_bytes(), Duration::from_secs(5))
        .await;
    assert_eq!(raw_status(&answer), 431, "{answer:.300}");
    assert!(answer.contains("headers_too_large"), "{answer:.300}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn request_id_is_kept_when_well_formed() {
    let (gw, up) = setup().await;
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/public/x")
            .header("x-request-id", "trace-123")
            .body(body(""))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.header("x-request-id"), Some("trace-123"));
        assert_eq!(up.last().one("x-request-id").as_deref(), Some("trace-123"));
        let req = c
            .req("GET", "/public/x")
            .header("x-request-id", "bad id!")
            .body(body(""))
            .unwrap();
        let r = c.send(req).await;
        let generated = r.header("x-request-id").unwrap().to_owned();
        assert_ne!(generated, "bad id!");
        assert_eq!(up.last().one("x-request-id"), Some(generated));
    }
}

#[tokio::test]
async fn forward_token_passes_the_authorization_header() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &[]);
    let r = gw.client(Proto::H1).get("/fwd/x", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().one("authorization"),
        Some(format!("Bearer {token}"))
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let (gw, up) = setup().await;
    let c = gw.client(Proto::H1);
    let req = c
        .req("GET", "/public/set-identity")
        .header("connection", "x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic xyz")
        .body(body(""))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 200);
    let got = up.last();
    for h in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(got.all(h).is_empty(), "{h} reached the upstream");
    }
    assert_eq!(
        r.header("x-foo"),
        None,
        "a header the upstream named in Connection came back"
    );
}

#[tokio::test]
async fn body_limit_is_413() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &[]);
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("POST", "/small/echo-body")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(vec![b'a'; 4096])))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 413, "{proto:?}");
        let req = c
            .req("POST", "/small/echo-body")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(vec![b'a'; 1000])))
            .unwrap();
        let r = c.send(req).await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.body.len(), 1000);
    }
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn plain_listener_redirects_but_answers_probes() {
    let (gw, _up) = setup().await;
    let http = gw.http.unwrap();
    for (path, want) in [("/api/x?y=1", 308u16), ("/healthz", 200), ("/readyz", 200)] {
        let tcp = tokio::net::TcpStream::connect(http).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "example.com:8080")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
        if want == 308 {
            let loc = r.headers()["location"].to_str().unwrap();
            assert_eq!(
                loc,
                format!("https://example.com:{}/api/x?y=1", gw.https.port())
            );
        }
    }
}
