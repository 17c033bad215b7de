//! Sessions in a real Redis (started by the test on a free port): the key contract of
//! docs/contract.md, "Session keys in Redis" as another service would write it, revocation on every instance,
//! and Redis faults (stopped, paused): 503 with Retry-After, never a pass, then recovery.
//! These run with `session.cache = false`, the strict read-every-request mode; the cache's
//! own guarantees are pinned in session_cache.rs.

mod support;

use std::time::{Duration, Instant};

use support::client::{Proto, BOTH};
use support::gateway::{route, TestGateway};
use support::redis::RedisServer;
use support::upstream::Upstream;

fn redis_session(url: &str) -> String {
    format!("{}cache = false\n", support::gateway::redis_session(url))
}

fn routes(up: &Upstream) -> String {
    [
        route("/api/", &up.url(), ""),
        route("/admin/", &up.url(), "roles = [\"admin\"]"),
        route("/public/", &up.url(), "auth = \"public\""),
    ]
    .concat()
}

/// Writes a session the way another service would: raw HSET + EXPIRE.
fn write_session(redis: &RedisServer, sid: &str, user: &str, roles: Option<&str>) {
    let mut con = redis.client().get_connection().unwrap();
    let key = format!("gw:session:{sid}");
    let mut cmd = redis::cmd("HSET");
    cmd.arg(&key)
        .arg("user_id")
        .arg(user)
        .arg("created_at")
        .arg(1)
        .arg("ip")
        .arg("127.0.0.1");
    if let Some(r) = roles {
        cmd.arg("roles").arg(r);
    }
    let _: () = cmd.query(&mut con).unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(600)
        .query(&mut con)
        .unwrap();
}

fn redis_cmd(redis: &RedisServer, args: &[&str]) {
    let mut con = redis.client().get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(&mut con).unwrap();
}

#[tokio::test]
async fn a_session_written_by_another_service_is_honoured_and_revoked_everywhere() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let a = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    let b = TestGateway::start_sharing_keys(&a, &redis_session(&redis.url()), &routes(&up)).await;
    write_session(&redis, "ext-1", "carol", Some("user"));
    let token = a.token("carol", "ext-1", &["admin"]);
    for gw in [&a, &b] {
        for proto in BOTH {
            let c = gw.client(proto);
            assert_eq!(c.get("/api/x", Some(&token)).await.status, 200, "{proto:?}");
            assert_eq!(
                up.last().all("x-user-roles"),
                vec!["user"],
                "the session's roles win"
            );
            assert_eq!(
                c.get("/admin/x", Some(&token)).await.status,
                403,
                "{proto:?}"
            );
        }
    }
    // A role granted in Redis applies on the next request, on both instances.
    redis_cmd(&redis, &["HSET", "gw:session:ext-1", "roles", "user,admin"]);
    for gw in [&a, &b] {
        assert_eq!(
            gw.client(Proto::H2)
                .get("/admin/x", Some(&token))
                .await
                .status,
            200
        );
    }
    // Logout by deleting the key: 401 on the next request of every instance.
    redis_cmd(&redis, &["DEL", "gw:session:ext-1"]);
    for gw in [&a, &b] {
        for proto in BOTH {
            let r = gw.client(proto).get("/api/x", Some(&token)).await;
            assert_eq!(r.status, 401, "{proto:?}");
            assert_eq!(r.error_code(), "invalid_token");
        }
    }
    // A hash whose user_id is another user's is refused.
    write_session(&redis, "ext-2", "dave", None);
    let stolen = a.token("carol", "ext-2", &[]);
    assert_eq!(
        a.client(Proto::H1)
            .get("/api/x", Some(&stolen))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn redis_stopped_is_503_never_a_pass_and_recovers() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    write_session(&redis, "s1", "alice", None);
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H1);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    let forwarded = up.count();

    redis.stop();
    for proto in BOTH {
        let c = gw.client(proto);
        let started = Instant::now();
        let r = c.get("/api/x", Some(&token)).await;
        assert_eq!(r.status, 503, "{proto:?}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.error_code(), "session_store_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Public routes keep working.
        assert_eq!(c.get("/public/x", None).await.status, 200);
    }
    assert_eq!(
        up.count(),
        forwarded + 2,
        "only the public requests were forwarded"
    );
    assert_eq!(admin_status(&gw, "/readyz").await, 503);
    assert_eq!(admin_status(&gw, "/healthz").await, 200);

    redis.start_again();
    write_session(&redis, "s1", "alice", None);
    let mut status = 0;
    for _ in 0..50 {
        status = c.get("/api/x", Some(&token)).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the gateway did not recover when Redis came back"
    );
    assert_eq!(admin_status(&gw, "/readyz").await, 200);
}

#[tokio::test]
async fn redis_paused_is_503_within_the_timeout_and_recovers() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    write_session(&redis, "s1", "alice", None);
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H2);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    let forwarded = up.count();

    redis.pause();
    for _ in 0..3 {
        let started = Instant::now();
        let r = c.get("/api/x", Some(&token)).await;
        assert_eq!(r.status, 503);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(up.count(), forwarded);
    redis.resume();
    let mut status = 0;
    for _ in 0..50 {
        status = c.get("/api/x", Some(&token)).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the gateway did not recover when Redis resumed"
    );
}

async fn admin_status(gw: &TestGateway, path: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(gw.admin.unwrap())
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send.send_request(req).await.unwrap().status().as_u16()
}
