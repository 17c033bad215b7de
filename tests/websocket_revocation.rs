//! Revocation ends open tunnels (docs/contract.md, "Revocation and open tunnels"): a WebSocket whose session is
//! revoked by logout, kick, refresh reuse or another service's `DEL` straight in Redis is
//! closed, with the session cache on (the invalidation push), off (the periodic re-check) and
//! with the memory store; a tunnel of another session stays open. The waits below are
//! correctness bounds (the contract says one second), not speed assertions.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::auth::{self, add_user, call, login_ok, refresh, Pair};
use support::client::{Client, Proto};
use support::gateway::{redis_session, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::{handshake::client::generate_key, http, Message};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TlsStream<TcpStream>>;

const PW: &str = "correct horse battery";
/// How long a revoked tunnel may take to close before the test fails (the rule is 1 s).
const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// A gateway with the auth center, users alice (admin) and bob, on Redis (cache on or off)
/// or on the memory store.
struct Env {
    gw: TestGateway,
    redis: Option<RedisServer>,
    _up: Upstream,
}

impl Env {
    async fn redis(cache: bool) -> Env {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let mut session = redis_session(&redis.url());
        if !cache {
            session.push_str("cache = false\n");
        }
        let gw = auth::start(&session, "", &up).await;
        add_user(&redis, "alice", PW, &["admin"]);
        add_user(&redis, "bob", PW, &[]);
        if cache {
            wait_live(&gw).await;
        }
        Env {
            gw,
            redis: Some(redis),
            _up: up,
        }
    }

    async fn memory() -> Env {
        let up = Upstream::start().await;
        let gw = auth::start(MEMORY_SESSION, "registration = true", &up).await;
        let c = gw.client(Proto::H1);
        for name in ["alice", "bob"] {
            let body = json!({ "username": name, "password": PW });
            let r = call(&c, "POST", "/auth/register", Some(body), None, &[]).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
        Env {
            gw,
            redis: None,
            _up: up,
        }
    }

    fn c(&self) -> Client {
        self.gw.client(Proto::H1)
    }

    async fn login(&self, user: &str, device: &str) -> Pair {
        login_ok(&self.c(), user, PW, Some(device)).await
    }

    fn redis_cmd(&self, args: &[&str]) {
        let redis = self.redis.as_ref().expect("a Redis test");
        let mut con = redis.connection();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(&mut con).unwrap();
    }
}

async fn wait_live(gw: &TestGateway) {
    let cache = gw.gw.auth().session_cache().expect("cache on");
    for _ in 0..250 {
        if cache.is_live() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the invalidation link never came up");
}

/// A WebSocket through the gateway to the upstream's echo, authenticated by `token`.
async fn open(c: &Client, path: &str, token: &str) -> Ws {
    let req = http::Request::builder()
        .uri(format!("wss://localhost{path}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", generate_key())
        .body(())
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, c.tls().await)
        .await
        .expect("the upgrade is accepted");
    assert_eq!(resp.status(), 101);
    echo(&mut ws, "hello").await;
    ws
}

/// The tunnel carries a message both ways.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an echo within 5 s")
        .expect("the tunnel is open")
        .expect("a message");
    assert_eq!(back.into_text().unwrap().as_str(), text);
}

/// Waits (at most `CLOSE_BOUND`) for the gateway to close the tunnel.
async fn assert_closed(ws: &mut Ws, what: &str) {
    let closed = tokio::time::timeout(CLOSE_BOUND, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the tunnel is still open after {CLOSE_BOUND:?}"
    );
}

/// Every way a session ends, each checked against a tunnel of that session and a tunnel of
/// another session that must stay open. `del` revokes straight in the store (Redis only).
async fn every_revocation_closes_its_tunnels(env: &Env) {
    let c = env.c();
    let keep = env.login("bob", "keep").await;
    let mut control = open(&c, "/api/ws", &keep.access).await;

    // Logout.
    let p = env.login("alice", "d1").await;
    let mut ws = open(&c, "/api/ws", &p.access).await;
    let mut second = open(&c, "/api/ws", &p.access).await;
    let r = call(&c, "POST", "/auth/logout", None, Some(&p.access), &[]).await;
    assert_eq!(r.status, 204);
    assert_closed(&mut ws, "logout").await;
    assert_closed(&mut second, "logout, second tunnel").await;

    // Kick: signed out from another device of the same user.
    let victim = env.login("alice", "d2").await;
    let other = env.login("alice", "d3").await;
    let mut ws = open(&c, "/api/ws", &victim.access).await;
    let path = format!("/auth/sessions/{}", victim.sid);
    let r = call(&c, "DELETE", &path, None, Some(&other.access), &[]).await;
    assert_eq!(r.status, 204);
    assert_closed(&mut ws, "kick").await;

    // Refresh reuse: a used refresh token presented again revokes the whole session.
    let p = env.login("alice", "d4").await;
    let mut ws = open(&c, "/api/ws", &p.access).await;
    assert_eq!(refresh(&c, &p.refresh, Some("d4")).await.status, 200);
    assert_eq!(refresh(&c, &p.refresh, Some("d4")).await.status, 401);
    assert_closed(&mut ws, "refresh reuse").await;

    // Another service's DEL straight in Redis.
    if env.redis.is_some() {
        let p = env.login("alice", "d5").await;
        let mut ws = open(&c, "/api/ws", &p.access).await;
        env.redis_cmd(&["DEL", &format!("gw:session:{}", p.sid)]);
        assert_closed(&mut ws, "DEL in Redis").await;
    }

    // Sign out everywhere (the control's user is not touched).
    let p = env.login("alice", "d6").await;
    let mut ws = open(&c, "/api/ws", &p.access).await;
    let r = call(
        &c,
        "DELETE",
        "/auth/sessions",
        None,
        Some(&other.access),
        &[],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_closed(&mut ws, "sign out everywhere").await;

    echo(&mut control, "still here").await;
}

#[tokio::test]
async fn revocation_closes_tunnels_with_the_session_cache() {
    let env = Env::redis(true).await;
    every_revocation_closes_its_tunnels(&env).await;
    let cache = env.gw.gw.auth().session_cache().unwrap();
    // Closed tunnels deregister; only the control is left (its socket is still open).
    for _ in 0..100 {
        if cache.tunnels() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.tunnels(), 1);
    // With pushes, an idle open tunnel costs no Redis read (a window in which the link
    // bounced, on a loaded machine, says nothing and is tried again).
    let redis = env.redis.as_ref().unwrap();
    for _ in 0..3 {
        let flushes = cache.stats().flushes.load(Ordering::Relaxed);
        let before = hgetall_calls(redis);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if cache.stats().flushes.load(Ordering::Relaxed) == flushes {
            assert_eq!(hgetall_calls(redis), before, "an idle tunnel read Redis");
            return;
        }
    }
    panic!("the invalidation link kept bouncing");
}

fn hgetall_calls(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.connection())
        .unwrap();
    info.lines()
        .find(|l| l.starts_with("cmdstat_hgetall:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn revocation_closes_tunnels_without_the_session_cache() {
    let env = Env::redis(false).await;
    assert!(env.gw.gw.auth().session_cache().is_none());
    every_revocation_closes_its_tunnels(&env).await;
}

#[tokio::test]
async fn revocation_closes_tunnels_with_the_memory_store() {
    let env = Env::memory().await;
    every_revocation_closes_its_tunnels(&env).await;
}

/// A session id taken over by another user, or a role change that no longer meets the
/// route's roles, ends the tunnel as it would refuse the next request.
#[tokio::test]
async fn a_changed_session_closes_the_tunnel() {
    for cache in [true, false] {
        let env = Env::redis(cache).await;
        let c = env.c();
        let p = env.login("alice", "d1").await;
        let key = format!("gw:session:{}", p.sid);
        let mut api = open(&c, "/api/ws", &p.access).await;
        let mut admin = open(&c, "/admin/ws", &p.access).await;
        env.redis_cmd(&["HSET", &key, "roles", "user"]);
        assert_closed(&mut admin, "admin role removed").await;
        echo(&mut api, "no role needed").await;
        env.redis_cmd(&["HSET", &key, "user_id", "mallory"]);
        assert_closed(&mut api, "session of another user").await;
    }
}

/// Fail closed: a store that stops answering ends the tunnel after a few failed re-checks
/// (bounded, not immediate: a Redis blip shorter than that leaves tunnels open).
#[tokio::test]
async fn a_store_that_cannot_answer_closes_the_tunnel() {
    for cache in [true, false] {
        let mut env = Env::redis(cache).await;
        let c = env.c();
        let p = env.login("alice", "d1").await;
        let mut ws = open(&c, "/api/ws", &p.access).await;
        env.redis.as_mut().unwrap().pause();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        env.redis.as_mut().unwrap().resume();
        assert!(
            closed.is_ok(),
            "cache {cache}: still open with Redis paused"
        );
    }
}
