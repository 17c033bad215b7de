//! The coherent session cache (Redis client tracking): steady traffic costs no Redis round
//! trip, a revocation or role change written by anyone reaches every instance through the
//! invalidation push, and a cut invalidation link empties the cache (fail closed).

mod support;

use std::time::{Duration, Instant};

use support::client::{Client, Proto};
use support::gateway::{redis_session, route, TestGateway};
use support::redis::RedisServer;
use support::upstream::Upstream;

fn routes(up: &Upstream) -> String {
    [
        route("/api/", &up.url(), ""),
        route("/admin/", &up.url(), "roles = [\"admin\"]"),
    ]
    .concat()
}

fn redis_cmd(redis: &RedisServer, args: &[&str]) -> redis::Value {
    let mut con = redis.client().get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut con).unwrap()
}

fn hgetall_calls(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    info.lines()
        .find(|l| l.starts_with("cmdstat_hgetall:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn wait_live(gw: &TestGateway) {
    let cache = gw
        .gw
        .auth()
        .session_cache()
        .expect("the cache is on by default for Redis");
    for _ in 0..100 {
        if cache.is_live() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the invalidation link never came up");
}

/// Polls until `path` answers `want`, returning how long that took (at most `limit`).
async fn until_status(c: &Client, path: &str, token: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = c.get(path, Some(token)).await.status.as_u16();
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{path} still answers {status}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn write_session(redis: &RedisServer, sid: &str, user: &str, roles: &str) {
    let key = format!("gw:session:{sid}");
    redis_cmd(
        redis,
        &[
            "HSET",
            &key,
            "user_id",
            user,
            "roles",
            roles,
            "created_at",
            "1",
        ],
    );
    redis_cmd(redis, &["EXPIRE", &key, "600"]);
}

#[tokio::test]
async fn steady_requests_cost_no_redis_round_trip() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    wait_live(&gw).await;
    write_session(&redis, "s1", "alice", "user");
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H2);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    let before = hgetall_calls(&redis);
    for _ in 0..200 {
        assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    }
    let reads = hgetall_calls(&redis) - before;
    assert!(reads <= 2, "{reads} session reads for 200 requests");
    let stats = gw.gw.auth().session_cache().unwrap().stats();
    assert!(stats.hits.load(std::sync::atomic::Ordering::Relaxed) >= 200);
}

#[tokio::test]
async fn revocation_and_role_changes_reach_every_instance_through_the_cache() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let a = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    let b = TestGateway::start_sharing_keys(&a, &redis_session(&redis.url()), &routes(&up)).await;
    wait_live(&a).await;
    wait_live(&b).await;
    write_session(&redis, "s1", "alice", "user");
    let token = a.token("alice", "s1", &[]);
    let (ca, cb) = (a.client(Proto::H1), b.client(Proto::H2));
    for c in [&ca, &cb] {
        // Warm both caches.
        assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
        assert_eq!(c.get("/admin/x", Some(&token)).await.status, 403);
    }
    redis_cmd(&redis, &["HSET", "gw:session:s1", "roles", "user,admin"]);
    for c in [&ca, &cb] {
        let lag = until_status(c, "/admin/x", &token, 200, Duration::from_secs(1)).await;
        eprintln!("role change seen after {lag:?}");
    }
    redis_cmd(&redis, &["DEL", "gw:session:s1"]);
    for c in [&ca, &cb] {
        let lag = until_status(c, "/api/x", &token, 401, Duration::from_secs(1)).await;
        eprintln!("revocation seen after {lag:?}");
        // And it stays revoked.
        for _ in 0..5 {
            assert_eq!(c.get("/api/x", Some(&token)).await.status, 401);
        }
    }
    // A session that comes back (another service re-creates it) is seen too.
    write_session(&redis, "s1", "alice", "user");
    for c in [&ca, &cb] {
        until_status(c, "/api/x", &token, 200, Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn a_cut_invalidation_link_empties_the_cache() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    wait_live(&gw).await;
    write_session(&redis, "s1", "alice", "user");
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H1);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    let cache = gw.gw.auth().session_cache().unwrap();
    assert!(!cache.is_empty());

    // Kill the tracking connection (the one in BCAST tracking mode) from Redis' side.
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.starts_with("flags=") && f.contains('t'))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 1, "{list}");
    redis_cmd(&redis, &["CLIENT", "KILL", "ID", &ids[0]]);
    for _ in 0..100 {
        if cache.is_empty() || !cache.is_live() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Emptied on the cut; whatever it holds now was read after the link came back.
    let flushes = cache
        .stats()
        .flushes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        flushes >= 2,
        "the cut did not flush the cache ({flushes} flushes)"
    );
    // The revocation is seen whether or not the link is back yet.
    redis_cmd(&redis, &["DEL", "gw:session:s1"]);
    until_status(&c, "/api/x", &token, 401, Duration::from_secs(1)).await;
    wait_live(&gw).await;
}

#[tokio::test]
async fn cache_off_reads_redis_on_every_request() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let session = format!("{}cache = false\n", redis_session(&redis.url()));
    let gw = TestGateway::start(&session, &routes(&up)).await;
    assert!(gw.gw.auth().session_cache().is_none());
    write_session(&redis, "s1", "alice", "user");
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H1);
    let before = hgetall_calls(&redis);
    for _ in 0..10 {
        assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    }
    assert_eq!(hgetall_calls(&redis) - before, 10);
    redis_cmd(&redis, &["DEL", "gw:session:s1"]);
    assert_eq!(
        c.get("/api/x", Some(&token)).await.status,
        401,
        "strictly the next request"
    );
}

#[tokio::test]
async fn a_paused_redis_empties_the_cache_within_the_heartbeat() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&redis.url()), &routes(&up)).await;
    wait_live(&gw).await;
    write_session(&redis, "s1", "alice", "user");
    let token = gw.token("alice", "s1", &[]);
    let c = gw.client(Proto::H2);
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 200);
    redis.pause();
    // While Redis is silent nobody can revoke anything, so a cached answer is still true; once
    // the heartbeat misses, the cache is emptied and the gateway answers 503.
    let lag = until_status(&c, "/api/x", &token, 503, Duration::from_secs(5)).await;
    eprintln!("503 after {lag:?}");
    let forwarded = up.count();
    for _ in 0..3 {
        assert_eq!(c.get("/api/x", Some(&token)).await.status, 503);
    }
    assert_eq!(
        up.count(),
        forwarded,
        "nothing forwarded once the link is down"
    );
    assert!(!gw.gw.auth().session_cache().unwrap().is_live());
    redis.resume();
    until_status(&c, "/api/x", &token, 200, Duration::from_secs(10)).await;
}
