//! docs/contract.md, "Auth-center endpoints" against a real `redis-server` and real TLS: the life of a session,
//! refresh rotation (reuse, races, binding, use count), the session list and revocation,
//! the login limit, cookies, forward-auth, the JWKS document, and sessions written into Redis
//! by another service.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::auth::{
    self, add_user, call, login, login_ok, refresh, set_cookies, Pair, ACCESS_COOKIE,
    REFRESH_COOKIE,
};
use support::client::{Client, Proto};
use support::gateway::{redis_session, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;

const PW: &str = "correct horse battery";

struct Env {
    gw: TestGateway,
    up: Upstream,
    redis: RedisServer,
}

impl Env {
    async fn start(auth_extra: &str) -> Env {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let gw = auth::start(&redis_session(&redis.url()), auth_extra, &up).await;
        add_user(&redis, "alice", PW, &["admin"]);
        add_user(&redis, "bob", PW, &[]);
        Env { gw, up, redis }
    }

    fn c(&self) -> Client {
        self.gw.client(Proto::H1)
    }

    fn hgetall(&self, key: &str) -> Vec<(String, String)> {
        let mut con = self.redis.connection();
        redis::cmd("HGETALL").arg(key).query(&mut con).unwrap()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_whole_life_of_a_session() {
    let env = Env::start("").await;
    let c = env.c();
    let r = login(&c, "alice", PW, Some("laptop")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["expires_in"], 900);
    let p1 = Pair::from(&r);

    // docs/contract.md, "Session keys in Redis": the keys as another service would read them.
    let s = env.hgetall(&format!("gw:session:{}", p1.sid));
    assert_eq!(field(&s, "user_id"), Some("alice"));
    assert_eq!(field(&s, "roles"), Some("admin"));
    assert_eq!(field(&s, "ip"), Some("127.0.0.1"));
    assert_eq!(field(&s, "device_id"), Some("laptop"));
    assert_eq!(field(&s, "refresh_count"), Some("0"));
    let rec = env.hgetall(&format!("gw:refresh:{}", auth::sha256_hex(&p1.refresh)));
    assert_eq!(field(&rec, "sid"), Some(p1.sid.as_str()));
    assert_eq!(field(&rec, "state"), Some("live"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("gw:session:{}", p1.sid))
        .query(&mut env.redis.connection())
        .unwrap();
    assert!(ttl > 7 * 86400 - 60 && ttl <= 7 * 86400, "{ttl}");

    let r = c.get("/admin/x", Some(&p1.access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.up.last().one("x-user-id").as_deref(), Some("alice"));
    assert_eq!(env.up.last().one("x-session-id"), Some(p1.sid.clone()));

    let r = refresh(&c, &p1.refresh, Some("laptop")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let p2 = Pair::from(&r);
    assert_eq!(p2.sid, p1.sid);
    assert_ne!(p2.refresh, p1.refresh);
    let rec = env.hgetall(&format!("gw:refresh:{}", auth::sha256_hex(&p1.refresh)));
    assert_eq!(field(&rec, "state"), Some("used"));
    let s = env.hgetall(&format!("gw:session:{}", p1.sid));
    assert_eq!(field(&s, "refresh_count"), Some("1"));
    assert_eq!(c.get("/api/y", Some(&p2.access)).await.status, 200);

    let r = call(&c, "POST", "/auth/logout", None, Some(&p2.access), &[]).await;
    assert_eq!(r.status, 204);
    let expired = set_cookies(&r);
    assert!(expired
        .iter()
        .any(|v| v.starts_with(&format!("{ACCESS_COOKIE}=;")) && v.contains("Max-Age=0")));
    assert!(expired
        .iter()
        .any(|v| v.starts_with(&format!("{REFRESH_COOKIE}=;")) && v.contains("Max-Age=0")));
    for t in [&p1.access, &p2.access] {
        let r = c.get("/api/y", Some(t)).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.error_code(), "invalid_token");
    }
    assert_eq!(refresh(&c, &p2.refresh, Some("laptop")).await.status, 401);
}

#[tokio::test]
async fn a_used_refresh_token_revokes_the_session() {
    let env = Env::start("").await;
    let c = env.c();
    let p1 = login_ok(&c, "bob", PW, Some("phone")).await;
    let p2 = Pair::from(&refresh(&c, &p1.refresh, Some("phone")).await);
    let r = refresh(&c, &p1.refresh, Some("phone")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "invalid_grant");
    // The whole session is gone: the thief's and the owner's tokens alike.
    assert_eq!(refresh(&c, &p2.refresh, Some("phone")).await.status, 401);
    assert_eq!(c.get("/api/x", Some(&p2.access)).await.status, 401);
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("gw:session:{}", p1.sid))
        .query(&mut env.redis.connection())
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn twenty_racing_refreshes_give_exactly_one_pair() {
    let env = Env::start("").await;
    let c = env.c();
    let p = login_ok(&c, "bob", PW, Some("phone")).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, t) = (c.clone(), p.refresh.clone());
        tasks.push(tokio::spawn(
            async move { refresh(&c, &t, Some("phone")).await },
        ));
    }
    let mut ok = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status.as_u16() {
            200 => ok.push(Pair::from(&r)),
            401 => {}
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one refresh wins");
    // The losers presented a used token: the session is revoked (RFC 9700 4.14), unless
    // every loser ran before the winner, which a 20-way race does not produce.
    let s = env.hgetall(&format!("gw:session:{}", p.sid));
    assert!(
        s.is_empty(),
        "reuse by the losers revoked the session: {s:?}"
    );
}

#[tokio::test]
async fn device_binding_refuses_and_revokes() {
    let env = Env::start("").await; // bind_refresh = "device" is the default
    let c = env.c();
    let p = login_ok(&c, "bob", PW, Some("phone")).await;
    let r = refresh(&c, &p.refresh, Some("laptop")).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        c.get("/api/x", Some(&p.access)).await.status,
        401,
        "revoked"
    );

    let p = login_ok(&c, "bob", PW, Some("phone")).await;
    assert_eq!(
        refresh(&c, &p.refresh, None).await.status,
        401,
        "device missing"
    );

    let p = login_ok(&c, "bob", PW, Some("phone")).await;
    assert_eq!(refresh(&c, &p.refresh, Some("phone")).await.status, 200);
}

#[tokio::test]
async fn ip_binding_accepts_the_same_address_and_none_skips() {
    let env = Env::start("bind_refresh = \"ip\"").await;
    let c = env.c();
    let p = login_ok(&c, "bob", PW, Some("phone")).await;
    // Another device id is fine: only the address is bound, and it is the same.
    assert_eq!(refresh(&c, &p.refresh, Some("tablet")).await.status, 200);
    // A session whose recorded address is another one is refused and revoked.
    let p = login_ok(&c, "bob", PW, None).await;
    let _: () = redis::cmd("HSET")
        .arg(format!("gw:session:{}", p.sid))
        .arg("ip")
        .arg("192.0.2.7")
        .query(&mut env.redis.connection())
        .unwrap();
    assert_eq!(refresh(&c, &p.refresh, None).await.status, 401);
    assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 401);
}

#[tokio::test]
async fn the_use_count_is_enforced() {
    let env = Env::start("refresh_max_uses = 2").await;
    let c = env.c();
    let mut p = login_ok(&c, "bob", PW, Some("phone")).await;
    for _ in 0..2 {
        let r = refresh(&c, &p.refresh, Some("phone")).await;
        assert_eq!(r.status, 200);
        p = Pair::from(&r);
    }
    let r = refresh(&c, &p.refresh, Some("phone")).await;
    assert_eq!(r.status, 401);
    // Not a revocation: the last access token keeps working until it expires.
    assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
}

#[tokio::test]
async fn sessions_list_kick_and_sign_out_everywhere() {
    let env = Env::start("").await;
    let c = env.c();
    let a = login_ok(&c, "alice", PW, Some("laptop")).await;
    let b = login_ok(&c, "alice", PW, Some("phone")).await;
    let r = call(&c, "GET", "/auth/sessions", None, Some(&a.access), &[]).await;
    assert_eq!(r.status, 200);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let mine = list
        .iter()
        .find(|s| s["session_id"] == a.sid.as_str())
        .unwrap();
    assert_eq!(mine["current"], true);
    assert_eq!(mine["device_id"], "laptop");
    assert_eq!(mine["ip"], "127.0.0.1");
    let other = list
        .iter()
        .find(|s| s["session_id"] == b.sid.as_str())
        .unwrap();
    assert_eq!(other["current"], false);

    // Kick the phone.
    let path = format!("/auth/sessions/{}", b.sid);
    let r = call(&c, "DELETE", &path, None, Some(&a.access), &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(c.get("/api/x", Some(&b.access)).await.status, 401);
    assert_eq!(c.get("/api/x", Some(&a.access)).await.status, 200);
    assert_eq!(refresh(&c, &b.refresh, Some("phone")).await.status, 401);

    // Another instance sharing Redis sees the same revocations at once.
    let gw2 = TestGateway::start_sharing_keys(
        &env.gw,
        &redis_session(&env.redis.url()),
        &auth::routes(&env.up),
    )
    .await;
    let c2 = gw2.client(Proto::H2);
    let d = login_ok(&c2, "alice", PW, Some("desktop")).await;
    assert_eq!(c.get("/api/x", Some(&d.access)).await.status, 200);
    let r = call(&c2, "DELETE", "/auth/sessions", None, Some(&d.access), &[]).await;
    assert_eq!(r.status, 204);
    for t in [&a.access, &d.access] {
        // The instance that signed out forgets at once; the other one as soon as Redis'
        // invalidation push arrives (its session cache is on): well within a second.
        assert_eq!(c2.get("/api/x", Some(t)).await.status, 401);
        let started = Instant::now();
        while c.get("/api/x", Some(t)).await.status != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "revocation never reached instance 1"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn another_users_session_is_404() {
    let env = Env::start("").await;
    let c = env.c();
    let a = login_ok(&c, "alice", PW, None).await;
    let b = login_ok(&c, "bob", PW, None).await;
    let path = format!("/auth/sessions/{}", a.sid);
    let r = call(&c, "DELETE", &path, None, Some(&b.access), &[]).await;
    assert_eq!(r.status, 404);
    // The same answer as for a session that does not exist, and one that says so.
    assert_eq!(r.json()["message"], "no such session");
    let r = call(
        &c,
        "DELETE",
        "/auth/sessions/nope",
        None,
        Some(&b.access),
        &[],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "no such session");
    assert_eq!(c.get("/api/x", Some(&a.access)).await.status, 200);
    let r = call(&c, "GET", "/auth/sessions", None, None, &[]).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn repeated_failures_lock_the_username_with_429() {
    let env = Env::start("").await;
    let c = env.c();
    let wrong = login(&c, "alice", "wrong password", None).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid_credentials");
    let t0 = Instant::now();
    let unknown = login(&c, "nobody", "wrong password", None).await;
    let unknown_time = t0.elapsed();
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body, wrong.body, "unknown user: same body");
    // An unknown user still costs an argon2 run (at least a few ms with 19 MiB).
    assert!(unknown_time > Duration::from_millis(5), "{unknown_time:?}");

    for _ in 0..4 {
        assert_eq!(login(&c, "alice", "wrong password", None).await.status, 401);
    }
    // Locked: even the right password gets 429.
    let r = login(&c, "alice", PW, None).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
    // Other users from this address are not locked (20 per address).
    assert_eq!(login(&c, "bob", PW, None).await.status, 200);
    // The unknown user is locked exactly like a known one.
    for _ in 0..4 {
        login(&c, "nobody", "x", None).await;
    }
    let r = login(&c, "nobody", "x", None).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn cookies_have_the_right_attributes_and_work() {
    let env = Env::start("").await;
    let c = env.c();
    let r = login(&c, "bob", PW, None).await;
    let cookies = set_cookies(&r);
    let p = Pair::from(&r);
    let access = cookies
        .iter()
        .find(|v| v.starts_with(ACCESS_COOKIE))
        .unwrap();
    let refresh_c = cookies
        .iter()
        .find(|v| v.starts_with(REFRESH_COOKIE))
        .unwrap();
    assert_eq!(
        access,
        &format!(
            "{ACCESS_COOKIE}={}; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict",
            p.access
        )
    );
    assert!(refresh_c.starts_with(&format!(
        "{REFRESH_COOKIE}={}; Path=/auth; Max-Age=",
        p.refresh
    )));
    assert!(refresh_c.ends_with("; HttpOnly; Secure; SameSite=Strict"));
    assert!(!refresh_c.contains("Domain"));

    // A browser: the access cookie gets through the proxy, the refresh cookie refreshes.
    let cookie = format!("{ACCESS_COOKIE}={}", p.access);
    let r = call(&c, "GET", "/api/x", None, None, &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    // With the device cookie the login set (bind_refresh = "device" is the default).
    let device = cookies
        .iter()
        .find(|v| v.starts_with("__Host-gw_device="))
        .and_then(|v| v.split(';').next())
        .unwrap();
    let cookie = format!("{REFRESH_COOKIE}={}; {device}", p.refresh);
    let r = call(
        &c,
        "POST",
        "/auth/refresh",
        None,
        None,
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(set_cookies(&r).len(), 2);
}

#[tokio::test]
async fn cookies_off_sets_none() {
    let env = Env::start("cookies = false").await;
    let r = login(&env.c(), "bob", PW, None).await;
    assert_eq!(r.status, 200);
    assert!(set_cookies(&r).is_empty());
}

#[tokio::test]
async fn verify_applies_the_original_routes_rules() {
    let env = Env::start("").await;
    let c = env.c();
    let bob = login_ok(&c, "bob", PW, None).await;
    let alice = login_ok(&c, "alice", PW, None).await;
    let verify = |token: Option<String>, headers: Vec<(&'static str, &'static str)>| {
        let c = c.clone();
        async move { call(&c, "GET", "/auth/verify", None, token.as_deref(), &headers).await }
    };
    // nginx auth_request: X-Original-URI, -Method and -Host.
    const GET: (&str, &str) = ("x-original-method", "GET");
    const HOST: (&str, &str) = ("x-original-host", "localhost");
    let r = verify(
        Some(bob.access.clone()),
        vec![
            ("x-original-uri", "/api/a?b=1"),
            ("x-original-method", "GET"),
            ("x-original-host", "localhost"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-id"), Some("bob"));
    assert_eq!(r.header("x-session-id"), Some(bob.sid.as_str()));
    let r = verify(
        Some(bob.access.clone()),
        vec![("x-original-uri", "/admin/a"), GET, HOST],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = verify(
        Some(alice.access.clone()),
        vec![("x-original-uri", "/admin/a"), GET, HOST],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-roles"), Some("admin"));
    let r = verify(None, vec![("x-original-uri", "/api/a"), GET, HOST]).await;
    assert_eq!(r.status, 401);
    let r = verify(None, vec![("x-original-uri", "/public/a"), GET, HOST]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-id"), None);
    // Traefik ForwardAuth: X-Forwarded-Method / X-Forwarded-Uri.
    let r = verify(
        Some(bob.access.clone()),
        vec![
            ("x-forwarded-method", "DELETE"),
            ("x-forwarded-uri", "/ro/a"),
            ("x-forwarded-host", "localhost"),
        ],
    )
    .await;
    assert_eq!(r.status, 405);
    let r = verify(
        Some(bob.access.clone()),
        vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/ro/a"),
            ("x-forwarded-host", "localhost"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    // A client cannot smuggle identity into the answer.
    let r = verify(
        Some(bob.access.clone()),
        vec![
            ("x-original-uri", "/api/a"),
            GET,
            HOST,
            ("x-user-id", "alice"),
        ],
    )
    .await;
    assert_eq!(r.header("x-user-id"), Some("bob"));
    // Revoked on the next request.
    call(&c, "POST", "/auth/logout", None, Some(&bob.access), &[]).await;
    let r = verify(
        Some(bob.access.clone()),
        vec![("x-original-uri", "/api/a"), GET, HOST],
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn the_jwks_document_verifies_a_minted_token() {
    let env = Env::start("").await;
    let c = env.c();
    let p = login_ok(&c, "alice", PW, None).await;
    let r = c.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, 200);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&r.body).unwrap();
    let header = jsonwebtoken::decode_header(&p.access).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let jwk = set.find("k1").expect("kid k1 is published");
    assert!(r.json()["keys"][0].get("d").is_none(), "no private part");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["api"]);
    v.set_issuer(&["gateway"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&p.access, &key, &v).unwrap();
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["sid"], p.sid.as_str());
    assert_eq!(data.claims["roles"], json!(["admin"]));
}

#[tokio::test]
async fn a_retiring_key_is_listed_too() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let old = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.path().join("old.pub.pem"), old.public_key_pem()).unwrap();
    let toml = auth::toml(&redis_session(&redis.url()), "", &auth::routes(&up)).replace(
        "keys = [{ kid = \"k1\", public_key = \"signing.pub.pem\" }]",
        &format!(
            "algorithms = [\"EdDSA\", \"ES256\"]\nkeys = [{{ kid = \"k1\", public_key = \"signing.pub.pem\" }}, {{ kid = \"k0\", public_key = \"{}\" }}]",
            dir.path().join("old.pub.pem").display()
        ),
    ).replace("algorithms = [\"EdDSA\"]\n", "");
    let gw = TestGateway::start_toml(&toml).await;
    let r = gw
        .client(Proto::H2)
        .get("/.well-known/jwks.json", None)
        .await;
    let j = r.json();
    let kids: Vec<&str> = j["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k1", "k0"]);
    assert_eq!(j["keys"][1]["alg"], "ES256");
}

#[tokio::test]
async fn a_session_written_by_another_service_is_honoured() {
    let env = Env::start("").await;
    let c = env.c();
    let token = "external-refresh-token-0123456789abcdefXYZ";
    let mut con = env.redis.connection();
    let _: () = redis::cmd("HSET")
        .arg("gw:session:ext1")
        .arg(&[
            "user_id",
            "carol",
            "roles",
            "admin,ops",
            "created_at",
            "1700000000",
            "device_id",
            "kiosk",
        ])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg("gw:session:ext1")
        .arg(3600)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("gw:user-sessions:carol")
        .arg("ext1")
        .query(&mut con)
        .unwrap();
    let rkey = format!("gw:refresh:{}", auth::sha256_hex(token));
    let _: () = redis::cmd("HSET")
        .arg(&rkey)
        .arg(&["sid", "ext1", "state", "live"])
        .query(&mut con)
        .unwrap();

    let r = refresh(&c, token, Some("kiosk")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = Pair::from(&r);
    assert_eq!(p.sid, "ext1");
    let r = c.get("/admin/x", Some(&p.access)).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.up.last().one("x-user-id").as_deref(), Some("carol"));
    assert_eq!(
        env.up.last().one("x-user-roles").as_deref(),
        Some("admin,ops")
    );
    let list = call(&c, "GET", "/auth/sessions", None, Some(&p.access), &[])
        .await
        .json();
    assert_eq!(list[0]["session_id"], "ext1");
    // The new refresh token lives until the session's end, not longer.
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("gw:refresh:{}", auth::sha256_hex(&p.refresh)))
        .query(&mut con)
        .unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");
    // Another service revokes it by deleting the key: the next request is 401.
    let _: () = redis::cmd("DEL")
        .arg("gw:session:ext1")
        .query(&mut con)
        .unwrap();
    assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 401);
    assert_eq!(refresh(&c, &p.refresh, Some("kiosk")).await.status, 401);
    // And the reuse of the first token is detected as such.
    assert_eq!(refresh(&c, token, Some("kiosk")).await.status, 401);
}

#[tokio::test]
async fn bodies_are_capped_and_strict() {
    let env = Env::start("").await;
    let c = env.c();
    let big = json!({ "username": "bob", "password": "x".repeat(17 * 1024) });
    let r = call(&c, "POST", "/auth/login", Some(big), None, &[]).await;
    assert_eq!(r.status, 413);
    let extra = json!({ "username": "bob", "password": PW, "admin": true });
    let r = call(&c, "POST", "/auth/login", Some(extra), None, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "bad_request");
    let r = call(&c, "GET", "/auth/login", None, None, &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(
        call(&c, "POST", "/auth/nothing", None, None, &[])
            .await
            .status,
        404
    );
    assert_eq!(
        call(&c, "POST", "/auth/register", Some(json!({})), None, &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn registration_when_enabled() {
    let env = Env::start("registration = true").await;
    let c = env.c();
    let body = json!({ "username": "dave", "password": "a long password" });
    let r = call(&c, "POST", "/auth/register", Some(body.clone()), None, &[]).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The user id is generated, never the username.
    assert_ne!(r.json()["user_id"], "dave");
    let r = call(&c, "POST", "/auth/register", Some(body), None, &[]).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "username_taken");
    let weak = json!({ "username": "erin", "password": "short" });
    assert_eq!(
        call(&c, "POST", "/auth/register", Some(weak), None, &[])
            .await
            .status,
        400
    );
    let user = env.hgetall("gw:user:dave");
    assert!(field(&user, "password_hash")
        .unwrap()
        .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let p = login_ok(&c, "dave", "a long password", None).await;
    assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
}

#[tokio::test]
async fn the_memory_store_has_the_same_refresh_rules() {
    let up = Upstream::start().await;
    let gw = auth::start(MEMORY_SESSION, "registration = true", &up).await;
    let c = gw.client(Proto::H2);
    let body = json!({ "username": "mem", "password": PW });
    assert_eq!(
        call(&c, "POST", "/auth/register", Some(body), None, &[])
            .await
            .status,
        201
    );
    let p1 = login_ok(&c, "mem", PW, Some("phone")).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, t) = (c.clone(), p1.refresh.clone());
        tasks.push(tokio::spawn(async move {
            refresh(&c, &t, Some("phone")).await.status.as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        c.get("/api/x", Some(&p1.access)).await.status,
        401,
        "reuse revoked it"
    );
}
