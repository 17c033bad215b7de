//! Refresh tokens bound to a device, the refresh grace, revocations applied locally at once,
//! and short session lifetimes (docs/contract.md, "The auth center", section 6's
//! durations), end to end over real TLS, against a real `redis-server` and the memory store.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::auth::{self, add_user, call, login, set_cookies, Pair, REFRESH_COOKIE};
use support::client::{Client, Conn, Proto, BOTH};
use support::gateway::{redis_session, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;

const PW: &str = "correct horse battery";
const DEVICE_COOKIE: &str = "__Host-gw_device";

/// A gateway with `[auth]` extras, on Redis (user "bob") or on the memory store (user
/// "mem", registered through the endpoint since the memory store has no `user add`).
struct Env {
    gw: TestGateway,
    _up: Upstream,
    redis: Option<RedisServer>,
    user: &'static str,
}

impl Env {
    async fn redis(auth_extra: &str) -> Env {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let gw = auth::start(&redis_session(&redis.url()), auth_extra, &up).await;
        add_user(&redis, "bob", PW, &[]);
        Env {
            gw,
            _up: up,
            redis: Some(redis),
            user: "bob",
        }
    }

    async fn memory(auth_extra: &str) -> Env {
        let up = Upstream::start().await;
        let extra = format!("{auth_extra}\nregistration = true");
        let gw = auth::start(MEMORY_SESSION, &extra, &up).await;
        let body = json!({ "username": "mem", "password": PW });
        let c = gw.client(Proto::H1);
        let r = call(&c, "POST", "/auth/register", Some(body), None, &[]).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        Env {
            gw,
            _up: up,
            redis: None,
            user: "mem",
        }
    }

    /// Both stores, for the rules that must hold on each.
    async fn both(auth_extra: &str) -> [Env; 2] {
        [Env::redis(auth_extra).await, Env::memory(auth_extra).await]
    }

    fn name(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Logs in (optionally naming a device); returns the answer, which must be 200.
    async fn login(&self, c: &Client, device: Option<&str>) -> Login {
        let r = login(c, self.user, PW, device).await;
        assert_eq!(r.status, 200, "{}: login: {:?}", self.name(), r.body);
        Login {
            pair: Pair::from(&r),
            device: r.json()["device_id"].as_str().map(str::to_owned),
            cookies: set_cookies(&r),
        }
    }

    fn session_exists(&self, sid: &str) -> Option<bool> {
        let redis = self.redis.as_ref()?;
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("gw:session:{sid}"))
            .query(&mut redis.connection())
            .unwrap();
        Some(n == 1)
    }
}

struct Login {
    pair: Pair,
    device: Option<String>,
    cookies: Vec<String>,
}

impl Login {
    /// `name=value` of the cookie `name` as set by the answer (for a `Cookie` header).
    fn cookie(&self, name: &str) -> String {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.cookies))
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }
}

/// `POST /auth/refresh` with the token and, if given, a device id in the body.
async fn refresh(c: &Client, token: &str, device: Option<&str>) -> support::client::Resp {
    auth::refresh(c, token, device).await
}

/// A refresh as a browser sends it: no body, only cookies.
async fn cookie_refresh(c: &Client, cookies: &[String]) -> support::client::Resp {
    let header = cookies.join("; ");
    let headers = [
        ("cookie", header.as_str()),
        ("content-type", "application/json"),
    ];
    call(c, "POST", "/auth/refresh", None, None, &headers).await
}

fn assert_refused(r: &support::client::Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {:?}", r.body);
    assert_eq!(r.error_code(), "invalid_grant", "{what}");
}

#[tokio::test]
async fn a_login_without_a_device_is_bound_to_a_generated_one() {
    for env in Env::both("").await {
        for proto in BOTH {
            let c = env.gw.client(proto);
            let l = env.login(&c, None).await;
            let device = l.device.clone().expect("the answer names the device");
            assert!(device.len() >= 16, "{device}");
            assert!(
                device
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "URL-safe: {device}"
            );
            // Two logins, two devices.
            let other = env.login(&c, None).await.device.unwrap();
            assert_ne!(device, other);
            if let Some(redis) = &env.redis {
                let stored: Option<String> = redis::cmd("HGET")
                    .arg(format!("gw:session:{}", l.pair.sid))
                    .arg("device_id")
                    .query(&mut redis.connection())
                    .unwrap();
                assert_eq!(stored.as_deref(), Some(device.as_str()));
            }
            // The device cookie: __Host-, Path=/, no Domain, the session's lifetime.
            let set = l
                .cookies
                .iter()
                .find(|c| c.starts_with(&format!("{DEVICE_COOKIE}=")))
                .expect("a device cookie");
            assert!(
                set.ends_with("; Path=/; Max-Age=604800; HttpOnly; Secure; SameSite=Strict"),
                "{set}"
            );
            assert!(!set.contains("Domain"));
            // The generated id works like one the client chose.
            let r = refresh(&c, &l.pair.refresh, Some(&device)).await;
            assert_eq!(r.status, 200, "{} {proto:?}: {:?}", env.name(), r.body);
        }
    }
}

#[tokio::test]
async fn a_login_with_a_device_gets_it_back() {
    let env = Env::redis("").await;
    let c = env.gw.client(Proto::H2);
    let l = env.login(&c, Some("my laptop")).await;
    assert_eq!(l.device.as_deref(), Some("my laptop"));
    // Its cookie carries it encoded (a device id may hold what a cookie cannot), and works.
    let r = cookie_refresh(&c, &[l.cookie(REFRESH_COOKIE), l.cookie(DEVICE_COOKIE)]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Other binding modes generate nothing and set no device cookie.
    let env = Env::redis("bind_refresh = \"ip\"").await;
    let l = env.login(&env.gw.client(Proto::H1), None).await;
    assert_eq!(l.device, None);
    assert!(!l.cookies.iter().any(|c| c.starts_with(DEVICE_COOKIE)));
}

#[tokio::test]
async fn a_refresh_from_another_device_or_none_is_refused_and_revokes() {
    for env in Env::both("").await {
        for proto in BOTH {
            let c = env.gw.client(proto);
            for (what, device) in [("another device", Some("elsewhere")), ("no device", None)] {
                let l = env.login(&c, None).await;
                let r = refresh(&c, &l.pair.refresh, device).await;
                assert_refused(&r, what);
                // Revoked: its access token is refused on the next request...
                let r = c.get("/api/x", Some(&l.pair.access)).await;
                assert_eq!(r.status, 401, "{} {proto:?} {what}", env.name());
                // ...and the right device cannot bring it back.
                let r = refresh(&c, &l.pair.refresh, l.device.as_deref()).await;
                assert_refused(&r, "after the revocation");
                assert_ne!(env.session_exists(&l.pair.sid), Some(true));
            }
        }
    }
}

#[tokio::test]
async fn a_browser_refreshes_with_its_cookies_alone() {
    for env in Env::both("").await {
        for proto in BOTH {
            let c = env.gw.client(proto);
            let l = env.login(&c, None).await;
            let jar = [l.cookie(REFRESH_COOKIE), l.cookie(DEVICE_COOKIE)];
            let r = cookie_refresh(&c, &jar).await;
            assert_eq!(r.status, 200, "{} {proto:?}: {:?}", env.name(), r.body);
            let next = Pair::from(&r);
            assert_eq!(c.get("/api/x", Some(&next.access)).await.status, 200);

            // The refresh cookie without the device cookie names no device: refused, revoked.
            let l = env.login(&c, None).await;
            let r = cookie_refresh(&c, &[l.cookie(REFRESH_COOKIE)]).await;
            assert_refused(&r, "refresh cookie alone");
            assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 401);

            // Two different device cookies name no device: refused, but nothing is revoked.
            let l = env.login(&c, None).await;
            let other = format!("{DEVICE_COOKIE}=b3RoZXI");
            let jar = [l.cookie(REFRESH_COOKIE), l.cookie(DEVICE_COOKIE), other];
            assert_refused(&cookie_refresh(&c, &jar).await, "two device cookies");
            assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 200);
        }
    }
}

#[tokio::test]
async fn logout_and_sign_out_everywhere_expire_the_device_cookie() {
    let env = Env::redis("").await;
    for proto in BOTH {
        let c = env.gw.client(proto);
        for path in ["/auth/logout", "/auth/sessions"] {
            let l = env.login(&c, None).await;
            let method = if path == "/auth/logout" {
                "POST"
            } else {
                "DELETE"
            };
            let r = call(&c, method, path, None, Some(&l.pair.access), &[]).await;
            assert_eq!(r.status, 204, "{path}");
            let gone = set_cookies(&r);
            assert!(
                gone.iter()
                    .any(|v| v
                        .starts_with(&format!("{DEVICE_COOKIE}=; Path=/; Max-Age=0; HttpOnly"))),
                "{path}: {gone:?}"
            );
        }
    }
}

#[tokio::test]
async fn without_a_grace_racing_refreshes_give_one_pair_and_reuse_revokes() {
    for env in Env::both("refresh_grace = \"0s\"").await {
        let c = env.gw.client(Proto::H2);
        let l = env.login(&c, None).await;
        let device = l.device.clone().unwrap();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (c, t, d) = (c.clone(), l.pair.refresh.clone(), device.clone());
            tasks.push(tokio::spawn(async move {
                refresh(&c, &t, Some(&d)).await.status.as_u16()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap() == 200);
        }
        assert_eq!(ok, 1, "{}: exactly one wins", env.name());
        // The same token once more, from the same device: reuse, the session is gone.
        assert_refused(&refresh(&c, &l.pair.refresh, Some(&device)).await, "reuse");
        assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 401);
    }
}

#[tokio::test]
async fn within_the_grace_the_same_token_gets_the_same_successor() {
    for env in Env::both("refresh_grace = \"10s\"").await {
        for proto in BOTH {
            let c = env.gw.client(proto);
            let l = env.login(&c, None).await;
            let device = l.device.clone().unwrap();
            // Tabs racing: every one of them gets an answer, and all the same refresh token.
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (c, t, d) = (c.clone(), l.pair.refresh.clone(), device.clone());
                tasks.push(tokio::spawn(async move { refresh(&c, &t, Some(&d)).await }));
            }
            let mut successors = Vec::new();
            for t in tasks {
                let r = t.await.unwrap();
                assert_eq!(r.status, 200, "{} {proto:?}: {:?}", env.name(), r.body);
                successors.push(Pair::from(&r));
            }
            let first = successors[0].refresh.clone();
            assert!(successors.iter().all(|p| p.refresh == first));
            assert_ne!(first, l.pair.refresh);
            // A late tab, still within the grace, by cookies alone.
            let r = cookie_refresh(&c, &[l.cookie(REFRESH_COOKIE), l.cookie(DEVICE_COOKIE)]).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(Pair::from(&r).refresh, first);
            // Every access token handed out works, and the successor refreshes normally.
            for p in &successors {
                assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
            }
            let r = refresh(&c, &first, Some(&device)).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_ne!(Pair::from(&r).refresh, first);
            if let Some(redis) = &env.redis {
                let count: String = redis::cmd("HGET")
                    .arg(format!("gw:session:{}", l.pair.sid))
                    .arg("refresh_count")
                    .query(&mut redis.connection())
                    .unwrap();
                assert_eq!(count, "2", "the replays did not rotate");
            }
            // The successor is used now: the first token has no grace left.
            assert_refused(
                &refresh(&c, &l.pair.refresh, Some(&device)).await,
                "past the successor",
            );
            assert_ne!(env.session_exists(&l.pair.sid), Some(true));
        }
    }
}

#[tokio::test]
async fn within_the_grace_another_device_is_reuse() {
    for env in Env::both("refresh_grace = \"10s\"").await {
        let c = env.gw.client(Proto::H1);
        let l = env.login(&c, None).await;
        let device = l.device.clone().unwrap();
        let r = refresh(&c, &l.pair.refresh, Some(&device)).await;
        assert_eq!(r.status, 200);
        let next = Pair::from(&r);
        assert_refused(
            &refresh(&c, &l.pair.refresh, Some("thief")).await,
            "another device",
        );
        assert_eq!(c.get("/api/x", Some(&next.access)).await.status, 401);
        assert_refused(&refresh(&c, &next.refresh, Some(&device)).await, "revoked");
        // A session bound elsewhere than the grace's device is refused too (no device).
        let l = env.login(&c, None).await;
        refresh(&c, &l.pair.refresh, Some(&l.device.clone().unwrap())).await;
        assert_refused(&refresh(&c, &l.pair.refresh, None).await, "no device");
        assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 401);
    }
}

#[tokio::test]
async fn after_the_grace_a_replay_is_reuse() {
    for env in Env::both("refresh_grace = \"1s\"").await {
        let c = env.gw.client(Proto::H2);
        let l = env.login(&c, None).await;
        let device = l.device.clone().unwrap();
        assert_eq!(
            refresh(&c, &l.pair.refresh, Some(&device)).await.status,
            200
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_refused(
            &refresh(&c, &l.pair.refresh, Some(&device)).await,
            "after the grace",
        );
        assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 401);
    }
}

#[tokio::test]
async fn redis_keeps_the_successor_sealed_and_only_for_the_grace() {
    let env = Env::redis("refresh_grace = \"2s\"").await;
    let redis = env.redis.as_ref().unwrap();
    let c = env.gw.client(Proto::H1);
    let l = env.login(&c, None).await;
    let r = refresh(&c, &l.pair.refresh, l.device.as_deref()).await;
    let next = Pair::from(&r);
    let key = format!("gw:refresh-grace:{}", auth::sha256_hex(&l.pair.refresh));
    let mut con = redis.connection();
    let fields: Vec<(String, String)> = redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
    assert!(
        !fields.is_empty(),
        "the grace record exists during the grace"
    );
    for (name, value) in &fields {
        assert!(
            !value.contains(&next.refresh),
            "{name} holds the successor in clear"
        );
    }
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut con).unwrap();
    assert!(pttl > 0 && pttl <= 2000, "{pttl}");
    // Nothing anywhere in Redis holds either token in clear.
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    for k in &keys {
        assert!(!k.contains(&next.refresh) && !k.contains(&l.pair.refresh));
    }
    let dump: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("gw:refresh"))
        .flat_map(|k| {
            let f: Vec<(String, String)> = redis::cmd("HGETALL").arg(k).query(&mut con).unwrap();
            f.into_iter().map(|(_, v)| v)
        })
        .collect();
    assert!(dump
        .iter()
        .all(|v| v != &next.refresh && v != &l.pair.refresh));
    // Past the grace the record is gone.
    let started = Instant::now();
    loop {
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut con).unwrap();
        if exists == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without a grace no such record is written at all.
    let env = Env::redis("").await;
    let redis = env.redis.as_ref().unwrap();
    let c = env.gw.client(Proto::H1);
    let l = env.login(&c, None).await;
    refresh(&c, &l.pair.refresh, l.device.as_deref()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gw:refresh-grace:*")
        .query(&mut redis.connection())
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// One request on a kept-alive connection.
async fn send(
    c: &Client,
    conn: &mut Conn,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> u16 {
    let mut b = c.req(method, path);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let bytes = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let resp = conn.send(b.body(Full::new(bytes)).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[tokio::test]
async fn a_revocation_by_refresh_is_refused_at_once_with_the_session_cache() {
    let env = Env::redis("").await;
    let cache = env
        .gw
        .gw
        .auth()
        .session_cache()
        .expect("on by default")
        .clone();
    let started = Instant::now();
    while !cache.is_live() {
        assert!(started.elapsed() < Duration::from_secs(5), "link never up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for proto in BOTH {
        let c = env.gw.client(proto);
        let mut conn = c.connect().await;
        for round in 0..24 {
            let l = env.login(&c, None).await;
            let device = l.device.clone().unwrap();
            // Warm the cache with the session, then rotate once.
            assert_eq!(
                send(&c, &mut conn, "GET", "/api/x", None, Some(&l.pair.access)).await,
                200
            );
            let body = json!({ "refresh_token": l.pair.refresh, "device_id": device });
            assert_eq!(
                send(
                    &c,
                    &mut conn,
                    "POST",
                    "/auth/refresh",
                    Some(body.clone()),
                    None
                )
                .await,
                200
            );
            assert_eq!(
                send(&c, &mut conn, "GET", "/api/x", None, Some(&l.pair.access)).await,
                200
            );
            // Even rounds: reuse; odd rounds: a binding mismatch. Both revoke, and the very
            // next request on this instance is refused.
            let revoking = if round % 2 == 0 {
                body
            } else {
                json!({ "refresh_token": l.pair.refresh, "device_id": "elsewhere" })
            };
            assert_eq!(
                send(&c, &mut conn, "POST", "/auth/refresh", Some(revoking), None).await,
                401
            );
            assert_eq!(
                send(&c, &mut conn, "GET", "/api/x", None, Some(&l.pair.access)).await,
                401,
                "{proto:?} round {round}: served from the cache after the revocation"
            );
        }
    }
}

#[tokio::test]
async fn a_short_refresh_ttl_ends_the_session() {
    let extra = "access_ttl = \"1s\"\nrefresh_ttl = \"3s\"";
    for env in Env::both(extra).await {
        let c = env.gw.client(Proto::H2);
        let l = env.login(&c, None).await;
        let device = l.device.clone().unwrap();
        assert!(l
            .cookies
            .iter()
            .any(|v| v.starts_with(REFRESH_COOKIE) && v.contains("Max-Age=3;")));
        assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 200);
        let r = refresh(&c, &l.pair.refresh, Some(&device)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let next = Pair::from(&r);
        tokio::time::sleep(Duration::from_millis(3300)).await;
        assert_refused(
            &refresh(&c, &next.refresh, Some(&device)).await,
            "past the session's end",
        );
        // The access token is still within the JWT leeway; the session's expiry refuses it.
        let started = Instant::now();
        while c.get("/api/x", Some(&next.access)).await.status != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{}: the session outlived its refresh_ttl",
                env.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            env.session_exists(&l.pair.sid),
            env.redis.as_ref().map(|_| false)
        );
    }
}

#[tokio::test]
async fn the_refresh_revocation_drops_the_cached_session_itself() {
    // Redis' push usually wins the race on loopback, so the test above cannot tell whether
    // this instance dropped the session itself. Count instead: once the revocation's own push
    // has arrived, the cache must have seen two invalidations (the push and its own), not one.
    let env = Env::redis("").await;
    let cache = env
        .gw
        .gw
        .auth()
        .session_cache()
        .expect("on by default")
        .clone();
    let started = Instant::now();
    while !cache.is_live() {
        assert!(started.elapsed() < Duration::from_secs(5), "link never up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = env.gw.client(Proto::H1);
    for (what, other_device) in [("reuse", false), ("binding mismatch", true)] {
        let l = env.login(&c, None).await;
        let device = l.device.clone().unwrap();
        assert_eq!(c.get("/api/x", Some(&l.pair.access)).await.status, 200);
        assert_eq!(
            refresh(&c, &l.pair.refresh, Some(&device)).await.status,
            200
        );
        // Let the pushes of the login and the rotation arrive (a late one could only make
        // this test pass wrongly, never fail wrongly).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let count = || {
            cache
                .stats()
                .invalidations
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = count();
        let device = if other_device {
            "elsewhere"
        } else {
            device.as_str()
        };
        assert_refused(&refresh(&c, &l.pair.refresh, Some(device)).await, what);
        let started = Instant::now();
        while count() < before + 2 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{what}: only Redis' push invalidated the session ({} invalidation)",
                count() - before
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The device cookie is `Path=/`, so browsers send it with every request; it is the auth
/// center's and never reaches a backend (the other cookies do).
#[tokio::test]
async fn the_device_cookie_never_reaches_a_backend() {
    let up = Upstream::start().await;
    let gw = auth::start(MEMORY_SESSION, "", &up).await;
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/public/x")
            .header("cookie", format!("{DEVICE_COOKIE}=ZDE; theme=dark"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(c.send(req).await.status, 200, "{proto:?}");
        assert_eq!(up.last().all("cookie"), ["theme=dark"], "{proto:?}");
    }
}
