//! The admin listener's session endpoints as an attacker and an operator meet them: without
//! `[admin]` they do not exist (404); with it, every call needs the admin bearer token (401
//! otherwise, compared in constant time), probes and metrics stay open, and `POST /sessions`
//! never touches an existing session (409), in the memory store and in a real Redis.

mod support;

use std::collections::HashMap;

use support::admin::admin_call;
use support::client::{Proto, BOTH};
use support::gateway::{
    base_toml, redis_session, route, TestGateway, ADMIN_TOKEN, ADMIN_TOML, MEMORY_SESSION,
};
use support::redis::RedisServer;
use support::upstream::Upstream;

fn routes(up: &Upstream) -> String {
    [
        route("/api/", &up.url(), ""),
        route("/admin/", &up.url(), "roles = [\"admin\"]"),
    ]
    .concat()
}

/// Extra request headers: (name, value), a name repeated to send it twice.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

fn create_body(sid: &str, user: &str, roles: &[&str]) -> String {
    serde_json::json!({ "session_id": sid, "user_id": user, "roles": roles, "ttl": 600 })
        .to_string()
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn session_endpoints_refuse_a_missing_or_wrong_token() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &routes(&up)).await;
    let admin = gw.admin.unwrap();
    let body = create_body("s-evil", "eve", &["admin"]);
    let wrong_token = format!("Bearer {}", ADMIN_TOKEN.replace('0', "1"));
    let short_token = format!("Bearer {}", &ADMIN_TOKEN[..20]);
    let two = bearer();
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("no header", vec![], "missing_token"),
        (
            "wrong token",
            vec![("authorization", wrong_token.as_str())],
            "invalid_token",
        ),
        (
            "a prefix of the token",
            vec![("authorization", short_token.as_str())],
            "invalid_token",
        ),
        (
            "empty bearer",
            vec![("authorization", "Bearer ")],
            "missing_token",
        ),
        (
            "basic scheme",
            vec![("authorization", "Basic YWRtaW46YWRtaW4=")],
            "missing_token",
        ),
        (
            "the token twice",
            vec![
                ("authorization", two.as_str()),
                ("authorization", two.as_str()),
            ],
            "missing_token",
        ),
        (
            "token in another header",
            vec![("x-admin-token", ADMIN_TOKEN)],
            "missing_token",
        ),
    ];
    for (label, headers, code) in &cases {
        for (method, path, body) in [
            ("POST", "/sessions", Some(body.as_str())),
            ("DELETE", "/sessions/s-alice", None),
            ("GET", "/sessions/s-alice", None),
            ("GET", "/sessions", None),
        ] {
            let (status, h, text) = admin_call(admin, method, path, headers, body).await;
            assert_eq!(status, 401, "{label}: {method} {path}: {text}");
            assert_eq!(error_code(&text), *code, "{label}: {text}");
            let challenge = h["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{label}: {challenge}");
            assert_eq!(h["content-type"], "application/json");
            assert!(!text.contains(ADMIN_TOKEN), "{label}: the token is echoed");
        }
    }
    // None of that created a session: a token for it is refused.
    let token = gw.token("eve", "s-evil", &["admin"]);
    assert_eq!(
        gw.client(Proto::H1)
            .get("/admin/x", Some(&token))
            .await
            .status,
        401
    );
    assert_eq!(up.count(), 0);

    // The right token, scheme in any case: created, then usable, then deleted.
    let lower = format!("bearer {ADMIN_TOKEN}");
    let (status, _, text) = admin_call(
        admin,
        "POST",
        "/sessions",
        &[("authorization", lower.as_str())],
        Some(&create_body("s-ok", "alice", &["user"])),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let auth = bearer();
    let (status, _, text) = admin_call(
        admin,
        "GET",
        "/sessions/s-ok",
        &[("authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["user_id"].as_str(), v["roles"][0].as_str()),
        (Some("alice"), Some("user"))
    );
    let token = gw.token("alice", "s-ok", &[]);
    assert_eq!(
        gw.client(Proto::H2)
            .get("/api/x", Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(gw.delete_session("s-ok").await, 204);
    assert_eq!(
        gw.client(Proto::H2)
            .get("/api/x", Some(&token))
            .await
            .status,
        401
    );
    assert_eq!(gw.delete_session("s-ok").await, 404);
}

#[tokio::test]
async fn without_the_admin_table_the_session_endpoints_do_not_exist() {
    let up = Upstream::start().await;
    let toml = format!(
        "{}\n{MEMORY_SESSION}\n{}",
        base_toml("").replace(ADMIN_TOML, ""),
        routes(&up)
    );
    assert!(!toml.contains("[admin]"));
    let gw = TestGateway::start_toml(&toml).await;
    assert!(gw.config.admin.is_none());
    let admin = gw.admin.unwrap();
    let auth = bearer();
    for headers in [vec![], vec![("authorization", auth.as_str())]] {
        for (method, path, body) in [
            (
                "POST",
                "/sessions",
                Some(create_body("s1", "eve", &["admin"])),
            ),
            ("DELETE", "/sessions/s1", None),
        ] {
            let (status, _, text) =
                admin_call(admin, method, path, &headers, body.as_deref()).await;
            assert_eq!(status, 404, "{method} {path}: {text}");
            assert_eq!(error_code(&text), "not_found");
        }
    }
    // The probes still answer.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            admin_call(admin, "GET", path, &[], None).await.0,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn probes_and_metrics_need_no_token() {
    let gw = TestGateway::start(MEMORY_SESSION, &route("/p/", "http://127.0.0.1:9", "")).await;
    let admin = gw.admin.unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, body) = admin_call(admin, "GET", path, &[], None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // A wrong token on an open endpoint changes nothing either.
        let (status, _, _) = admin_call(
            admin,
            "GET",
            path,
            &[("authorization", "Bearer nope")],
            None,
        )
        .await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn an_existing_session_is_never_replaced_in_memory() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &routes(&up)).await;
    let admin = gw.admin.unwrap();
    let auth = bearer();
    let h = [("authorization", auth.as_str())];
    let (status, _, text) = admin_call(
        admin,
        "POST",
        "/sessions",
        &h,
        Some(&create_body("s1", "alice", &["user"])),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let before = gw.gw.auth().store().get("s1").await.unwrap().unwrap();

    // Alice asks for admin on her own session; Mallory tries to take it over.
    for (user, roles) in [("alice", &["admin"][..]), ("mallory", &["admin"][..])] {
        let (status, _, text) = admin_call(
            admin,
            "POST",
            "/sessions",
            &h,
            Some(&create_body("s1", user, roles)),
        )
        .await;
        assert_eq!(status, 409, "{user}: {text}");
        assert_eq!(error_code(&text), "conflict");
    }
    assert_eq!(
        gw.gw.auth().store().get("s1").await.unwrap().unwrap(),
        before
    );
    for proto in BOTH {
        let c = gw.client(proto);
        let alice = gw.token("alice", "s1", &["admin"]);
        assert_eq!(c.get("/api/x", Some(&alice)).await.status, 200, "{proto:?}");
        assert_eq!(
            c.get("/admin/x", Some(&alice)).await.status,
            403,
            "{proto:?}"
        );
        let mallory = gw.token("mallory", "s1", &["admin"]);
        assert_eq!(
            c.get("/api/x", Some(&mallory)).await.status,
            401,
            "{proto:?}"
        );
    }
}

fn hgetall(redis: &RedisServer, key: &str) -> HashMap<String, String> {
    let mut con = redis.connection();
    redis::cmd("HGETALL").arg(key).query(&mut con).unwrap()
}

fn pttl(redis: &RedisServer, key: &str) -> i64 {
    let mut con = redis.connection();
    redis::cmd("PTTL").arg(key).query(&mut con).unwrap()
}

#[tokio::test]
async fn an_existing_session_is_never_replaced_in_redis() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let session = format!("{}cache = false\n", redis_session(&redis.url()));
    let gw = TestGateway::start(&session, &routes(&up)).await;
    let admin = gw.admin.unwrap();
    let auth = bearer();
    let h = [("authorization", auth.as_str())];

    // A session as a login leaves it: bound to a device, refreshed seven times.
    {
        let mut con = redis.connection();
        let _: () = redis::cmd("HSET")
            .arg("gw:session:s1")
            .arg(&[
                ("user_id", "alice"),
                ("roles", "user"),
                ("created_at", "1700000000"),
                ("ip", "192.0.2.7"),
                ("device_id", "phone-1"),
                ("refresh_count", "7"),
            ])
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("EXPIRE")
            .arg("gw:session:s1")
            .arg(3600)
            .query(&mut con)
            .unwrap();
    }
    let before = hgetall(&redis, "gw:session:s1");
    for user in ["alice", "mallory"] {
        let (status, _, text) = admin_call(
            admin,
            "POST",
            "/sessions",
            &h,
            Some(&create_body("s1", user, &["admin"])),
        )
        .await;
        assert_eq!(status, 409, "{user}: {text}");
    }
    assert_eq!(hgetall(&redis, "gw:session:s1"), before);
    assert!(
        pttl(&redis, "gw:session:s1") > 3_000_000,
        "the expiry was kept"
    );
    let mut con = redis.connection();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("gw:user-sessions:mallory")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0, "nothing was added for mallory");

    // A new id is created with the contract's fields.
    let (status, _, text) = admin_call(
        admin,
        "POST",
        "/sessions",
        &h,
        Some(&create_body("s2", "bob", &["ops"])),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let s2 = hgetall(&redis, "gw:session:s2");
    assert_eq!(s2["user_id"], "bob");
    assert_eq!(s2["roles"], "ops");
    assert_eq!(s2["refresh_count"], "0");
    assert!(pttl(&redis, "gw:session:s2") > 0);
}

#[tokio::test]
async fn a_store_failure_is_answered_without_its_details() {
    let mut redis = RedisServer::start();
    let session = format!("{}cache = false\n", redis_session(&redis.url()));
    let gw = TestGateway::start(&session, &route("/p/", "http://127.0.0.1:9", "")).await;
    let admin = gw.admin.unwrap();
    let auth = bearer();
    let h = [("authorization", auth.as_str())];
    redis.stop();
    for (method, path, body) in [
        ("POST", "/sessions", Some(create_body("s1", "alice", &[]))),
        ("DELETE", "/sessions/s1", None),
    ] {
        let (status, headers, text) = admin_call(admin, method, path, &h, body.as_deref()).await;
        assert_eq!(status, 503, "{method}: {text}");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(error_code(&text), "session_store_unavailable");
        let lower = text.to_lowercase();
        for detail in ["redis", "refused", "127.0.0.1", "io error", "connection"] {
            assert!(!lower.contains(detail), "{method}: {detail} in {text}");
        }
    }
}

#[tokio::test]
async fn racing_creates_of_one_id_give_exactly_one_201() {
    let redis = RedisServer::start();
    let session = format!("{}cache = false\n", redis_session(&redis.url()));
    let gw = TestGateway::start(&session, &route("/p/", "http://127.0.0.1:9", "")).await;
    let admin = gw.admin.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        tasks.push(tokio::spawn(async move {
            let auth = bearer();
            let body = create_body("race", &format!("user{i}"), &["admin"]);
            admin_call(
                admin,
                "POST",
                "/sessions",
                &[("authorization", auth.as_str())],
                Some(&body),
            )
            .await
            .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    let hash = hgetall(&redis, "gw:session:race");
    assert!(hash["user_id"].starts_with("user"), "{hash:?}");
}

#[tokio::test]
async fn gateway_token_never_replaces_a_redis_session() {
    let redis = RedisServer::start();
    let session = format!("{}cache = false\n", redis_session(&redis.url()));
    let gw = TestGateway::start(&session, &route("/p/", "http://127.0.0.1:9", "")).await;
    let config = gw.config_path();
    let token = |sub: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["token", "--config"])
            .arg(&config)
            .args(["--sub", sub, "--role", "admin", "--sid", "r1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), err)
    };
    let (code, err) = token("alice");
    assert_eq!(code, 0, "{err}");
    let mut con = redis.connection();
    let _: () = redis::cmd("HSET")
        .arg("gw:session:r1")
        .arg("refresh_count")
        .arg("5")
        .query(&mut con)
        .unwrap();
    let before = hgetall(&redis, "gw:session:r1");
    let (code, err) = token("alice");
    assert_eq!(code, 0, "the same user's session is used as it is: {err}");
    let (code, err) = token("mallory");
    assert_eq!(code, 1, "{err}");
    assert_eq!(hgetall(&redis, "gw:session:r1"), before);
}

#[tokio::test]
async fn a_reload_rotates_the_admin_token() {
    let gw = TestGateway::start(MEMORY_SESSION, &route("/p/", "http://127.0.0.1:9", "")).await;
    let admin = gw.admin.unwrap();
    let new_token = "a-rotated-admin-token-0123456789abcdefghij";
    std::fs::write(gw.dir.path().join("admin.token"), new_token).unwrap();
    gateway::app::reload::reload(&gw.live, "test")
        .await
        .unwrap();
    let old = bearer();
    let new = format!("Bearer {new_token}");
    let (status, _, _) = admin_call(
        admin,
        "GET",
        "/sessions/x",
        &[("authorization", old.as_str())],
        None,
    )
    .await;
    assert_eq!(status, 401, "the old token is refused after the reload");
    let (status, _, _) = admin_call(
        admin,
        "GET",
        "/sessions/x",
        &[("authorization", new.as_str())],
        None,
    )
    .await;
    assert_eq!(
        status, 404,
        "the new token is accepted (and there is no session x)"
    );
}

/// Every session the admin API creates can be revoked through it: a session id the URL path
/// cannot carry as it is (`a/b`, a space, `..`-like forms with `/`) is 400, not a session no
/// `DELETE /sessions/{sid}` can reach.
#[tokio::test]
async fn session_ids_the_path_cannot_carry_are_refused() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/api/", &up.url(), "")).await;
    let auth = bearer();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    for sid in ["a/b", "s1 ", "../s1", "a%2Fb", "é", ".", ".."] {
        let body = serde_json::json!({ "session_id": sid, "user_id": "alice", "ttl": 60 });
        let (status, _, text) = admin_call(
            gw.admin.unwrap(),
            "POST",
            "/sessions",
            &headers,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{sid:?}: {text}");
    }
    // Control characters in what becomes a header value later: 400 now.
    for (user, roles) in [
        ("u9\r\nX-Evil: 1", vec!["user"]),
        ("u9", vec!["ad\u{0}min"]),
    ] {
        let body =
            serde_json::json!({ "session_id": "s-ok", "user_id": user, "roles": roles, "ttl": 60 });
        let (status, _, text) = admin_call(
            gw.admin.unwrap(),
            "POST",
            "/sessions",
            &headers,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{user:?} {roles:?}: {text}");
    }
}
