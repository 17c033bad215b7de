//! The session store against a real redis-server: the key layout other services rely on
//! (docs/contract.md, "Session keys in Redis"), sessions written by others, and the faults of docs/security.md (Redis
//! stopped or paused: an error within the timeout, then recovery without a restart).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::auth::session::{MemoryStore, NewSession, SessionStore, StoreError};
use gateway::config::{Session, StoreKind};
use redis::Commands;
use support::redis::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);
const HOUR: Duration = Duration::from_secs(3600);

fn cfg(server: &RedisServer, timeout: Duration, max_concurrent: usize) -> Session {
    Session {
        store: StoreKind::Redis,
        redis: gateway::config::Redis::url(server.url()),
        key_prefix: "gw:".into(),
        timeout,
        max_concurrent,
        cache: false,
    }
}

async fn redis_store(server: &RedisServer) -> SessionStore {
    SessionStore::connect(&cfg(server, TIMEOUT, 8))
        .await
        .expect("store")
}

fn memory_store() -> SessionStore {
    SessionStore::Memory(MemoryStore::new())
}

fn new_session(sid: &str, user_id: &str) -> NewSession {
    NewSession {
        sid: sid.into(),
        user_id: user_id.into(),
        roles: Some(vec!["admin".into(), "ops".into()]),
        created_at: 1_700_000_000,
        ip: Some("192.0.2.7".into()),
        user_agent: Some("curl/8".into()),
        device_id: Some("phone-1".into()),
        claims: vec![("email".into(), "a@b.test".into())],
    }
}

/// Polls `get` until the store answers again, for at most `limit`.
async fn wait_until_answers(store: &SessionStore, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if store.get("probe").await.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "store did not recover within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- semantics, run on both stores ----

async fn check_round_trip(store: &SessionStore) {
    store.create(&new_session("s1", "u1"), HOUR).await.unwrap();
    let r = store.get("s1").await.unwrap().expect("session");
    assert_eq!(r.user_id, "u1");
    assert_eq!(r.roles, Some(vec!["admin".to_owned(), "ops".to_owned()]));
    assert_eq!(r.created_at, Some(1_700_000_000));
    assert_eq!(r.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(r.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(r.device_id.as_deref(), Some("phone-1"));
    assert_eq!(r.claims, [("email".to_owned(), "a@b.test".to_owned())]);
    assert_eq!(r.refresh_count, 0);
    assert_eq!(store.get("nope").await.unwrap(), None);
    assert!(store.delete("s1").await.unwrap());
    assert_eq!(store.get("s1").await.unwrap(), None);
    assert!(!store.delete("s1").await.unwrap());
}

async fn check_list_for_user(store: &SessionStore) {
    let mut older = new_session("a", "u2");
    older.created_at = 10;
    let mut newer = new_session("b", "u2");
    newer.created_at = 20;
    store.create(&newer, HOUR).await.unwrap();
    store.create(&older, HOUR).await.unwrap();
    store.create(&new_session("c", "u3"), HOUR).await.unwrap();
    let listed = store.list_for_user("u2").await.unwrap();
    let sids: Vec<&str> = listed.iter().map(|(sid, _)| sid.as_str()).collect();
    assert_eq!(sids, ["a", "b"]);
    assert_eq!(listed[0].1.user_id, "u2");
    store.delete("a").await.unwrap();
    let sids: Vec<String> = store
        .list_for_user("u2")
        .await
        .unwrap()
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    assert_eq!(sids, ["b"]);
    assert!(store.list_for_user("nobody").await.unwrap().is_empty());
}

async fn check_expiry(store: &SessionStore) {
    store
        .create(&new_session("short", "u4"), Duration::from_millis(100))
        .await
        .unwrap();
    assert!(store.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert!(store.list_for_user("u4").await.unwrap().is_empty());
}

async fn check_refusals(store: &SessionStore) {
    let mut comma = new_session("x", "u5");
    comma.roles = Some(vec!["a,admin".into()]);
    assert!(matches!(
        store.create(&comma, HOUR).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create(&new_session("x", "u5"), Duration::ZERO).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get("x").await.unwrap(), None);
}

async fn check_no_roles_field(store: &SessionStore) {
    let mut no_roles = new_session("nr", "u6");
    no_roles.roles = None;
    store.create(&no_roles, HOUR).await.unwrap();
    assert_eq!(store.get("nr").await.unwrap().unwrap().roles, None);
    let mut empty = new_session("er", "u6");
    empty.roles = Some(vec![]);
    store.create(&empty, HOUR).await.unwrap();
    assert_eq!(store.get("er").await.unwrap().unwrap().roles, Some(vec![]));
}

#[tokio::test]
async fn redis_semantics() {
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    store.ping().await.unwrap();
    check_round_trip(&store).await;
    check_list_for_user(&store).await;
    check_expiry(&store).await;
    check_refusals(&store).await;
    check_no_roles_field(&store).await;
}

#[tokio::test]
async fn memory_semantics() {
    let store = memory_store();
    store.ping().await.unwrap();
    check_round_trip(&store).await;
    check_list_for_user(&store).await;
    check_expiry(&store).await;
    check_refusals(&store).await;
    check_no_roles_field(&store).await;
}

#[tokio::test]
async fn memory_store_from_config_needs_no_redis() {
    let cfg = Session {
        store: StoreKind::Memory,
        redis: gateway::config::Redis::url("redis://127.0.0.1:1/0"),
        key_prefix: "gw:".into(),
        timeout: TIMEOUT,
        max_concurrent: 1,
        cache: false,
    };
    let store = SessionStore::connect(&cfg).await.unwrap();
    assert!(matches!(store, SessionStore::Memory(_)));
    check_round_trip(&store).await;
}

// ---- the Redis contract ----

#[tokio::test]
async fn key_layout_and_fields_follow_the_contract() {
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    store
        .create(&new_session("sid-1", "user-1"), HOUR)
        .await
        .unwrap();

    let mut raw = server.connection();
    let hash: HashMap<String, String> = raw.hgetall("gw:session:sid-1").unwrap();
    let expected: HashMap<String, String> = [
        ("user_id", "user-1"),
        ("roles", "admin,ops"),
        ("created_at", "1700000000"),
        ("ip", "192.0.2.7"),
        ("user_agent", "curl/8"),
        ("device_id", "phone-1"),
        ("claims", r#"{"email":"a@b.test"}"#),
        ("refresh_count", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(hash, expected);
    let ttl: i64 = raw.ttl("gw:session:sid-1").unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "session ttl {ttl}");

    let members: Vec<String> = raw.smembers("gw:user-sessions:user-1").unwrap();
    assert_eq!(members, ["sid-1"]);
    let set_ttl: i64 = raw.ttl("gw:user-sessions:user-1").unwrap();
    assert!(set_ttl > 3500 && set_ttl <= 3600, "set ttl {set_ttl}");

    // A longer session extends the set's life; a shorter one does not shorten it.
    store
        .create(&new_session("sid-2", "user-1"), 2 * HOUR)
        .await
        .unwrap();
    let set_ttl: i64 = raw.ttl("gw:user-sessions:user-1").unwrap();
    assert!(set_ttl > 7100, "set ttl after a longer session {set_ttl}");
    store
        .create(&new_session("sid-3", "user-1"), Duration::from_secs(60))
        .await
        .unwrap();
    let set_ttl: i64 = raw.ttl("gw:user-sessions:user-1").unwrap();
    assert!(set_ttl > 7100, "set ttl after a shorter session {set_ttl}");
    let mut members: Vec<String> = raw.smembers("gw:user-sessions:user-1").unwrap();
    members.sort();
    assert_eq!(members, ["sid-1", "sid-2", "sid-3"]);

    // delete removes the hash and the sid from the set.
    assert!(store.delete("sid-2").await.unwrap());
    let exists: bool = raw.exists("gw:session:sid-2").unwrap();
    assert!(!exists);
    let is_member: bool = raw.sismember("gw:user-sessions:user-1", "sid-2").unwrap();
    assert!(!is_member);

    // Nothing outside the prefix was written.
    let mut keys: Vec<String> = raw.keys("*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "gw:session:sid-1",
            "gw:session:sid-3",
            "gw:user-sessions:user-1"
        ]
    );
}

#[tokio::test]
async fn sessions_written_by_another_service_are_honoured() {
    let server = RedisServer::start();
    let store = redis_store(&server).await;
    let mut raw = server.connection();

    let _: () = raw
        .hset_multiple(
            "gw:session:ext",
            &[
                ("user_id", "u9"),
                ("roles", " admin , ,billing,"),
                ("refresh_count", "4"),
                ("issued_by", "sso"),
            ],
        )
        .unwrap();
    let r = store.get("ext").await.unwrap().expect("foreign session");
    assert_eq!(r.user_id, "u9");
    assert_eq!(
        r.roles,
        Some(vec!["admin".to_owned(), "billing".to_owned()])
    );
    assert_eq!(r.refresh_count, 4);
    assert_eq!(r.created_at, None);
    assert_eq!(r.ip, None);

    // A roles change applies on the next read.
    let _: () = raw.hset("gw:session:ext", "roles", "").unwrap();
    assert_eq!(store.get("ext").await.unwrap().unwrap().roles, Some(vec![]));
    let _: () = raw.hdel("gw:session:ext", "roles").unwrap();
    assert_eq!(store.get("ext").await.unwrap().unwrap().roles, None);

    // No user_id: not a session.
    let _: () = raw.hset("gw:session:anon", "roles", "admin").unwrap();
    assert_eq!(store.get("anon").await.unwrap(), None);

    // Revocation by another service: deleting the key is a logout, at once.
    store
        .create(&new_session("ours", "u9"), HOUR)
        .await
        .unwrap();
    assert!(store.get("ours").await.unwrap().is_some());
    let _: () = raw.del("gw:session:ours").unwrap();
    assert_eq!(store.get("ours").await.unwrap(), None);

    // The user's set lists the foreign session once it is added, and prunes the revoked one.
    let _: () = raw.sadd("gw:user-sessions:u9", "ext").unwrap();
    let sids: Vec<String> = store
        .list_for_user("u9")
        .await
        .unwrap()
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    assert_eq!(sids, ["ext"]);
    let members: Vec<String> = raw.smembers("gw:user-sessions:u9").unwrap();
    assert_eq!(members, ["ext"]);

    // A key of the wrong type is an error (503), never a pass.
    let _: () = raw.set("gw:session:str", "u9").unwrap();
    assert!(matches!(
        store.get("str").await,
        Err(StoreError::Unavailable(_))
    ));
}

// ---- faults ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_fails_fast_then_recovers() {
    let mut server = RedisServer::start();
    let store = redis_store(&server).await;
    store.create(&new_session("s", "u"), HOUR).await.unwrap();

    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let result = store.get("s").await;
        assert!(
            matches!(
                result,
                Err(StoreError::Unavailable(_) | StoreError::Timeout)
            ),
            "{result:?}"
        );
        assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());
        assert!(store.ping().await.is_err());
    }

    server.start_again();
    wait_until_answers(&store, Duration::from_secs(10)).await;
    // The restarted server is empty: the session is gone, and new ones work.
    assert_eq!(store.get("s").await.unwrap(), None);
    store.create(&new_session("s2", "u"), HOUR).await.unwrap();
    assert_eq!(store.get("s2").await.unwrap().unwrap().user_id, "u");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_does_not_fail_connect() {
    let mut server = RedisServer::start();
    server.stop();
    let store = redis_store(&server).await;
    let started = Instant::now();
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < TIMEOUT * 4);

    server.start_again();
    wait_until_answers(&store, Duration::from_secs(10)).await;
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_idle_is_invisible_to_reads() {
    let mut server = RedisServer::start();
    let store = redis_store(&server).await;
    store.ping().await.unwrap();
    server.stop();
    server.start_again();
    // The first read finds the old connection dead and retries on a new one in its deadline.
    let started = Instant::now();
    let result = store.get("s").await;
    assert_eq!(result, Ok(None), "after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_times_out_then_recovers() {
    let mut server = RedisServer::start();
    let store = Arc::new(redis_store(&server).await);
    for (sid, user) in [("p1", "alice"), ("p2", "bob")] {
        store.create(&new_session(sid, user), HOUR).await.unwrap();
    }

    // The shared connection and the revocations' own.
    let before = other_client_ids(&server);
    assert_eq!(before.len(), 2, "{before:?}");

    server.pause();
    // Sequential and concurrent calls all give up within the deadline.
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.get("p1").await;
        assert_eq!(result, Err(StoreError::Timeout));
        assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());
    }
    let started = Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get("p2").await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_err());
    }
    assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());
    // Long enough for the probe to give up on the connection and the reconnect to hang too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    assert!(store.get("p1").await.is_err());
    assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());

    server.resume();
    wait_until_answers(&store, Duration::from_secs(10)).await;
    // Answers are matched to their own requests: no late reply from the pause leaks in.
    for _ in 0..20 {
        assert_eq!(store.get("p1").await.unwrap().unwrap().user_id, "alice");
        assert_eq!(store.get("p2").await.unwrap().unwrap().user_id, "bob");
    }
    // The connections given up during the pause were replaced and closed, not leaked.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connected_clients(&server), 3);
    let after = other_client_ids(&server);
    assert_eq!(after.len(), 2, "{after:?}");
    // The shared one at least (its calls timed out); the revocations' own too when its
    // heartbeat fell in the pause.
    assert_ne!(
        before, after,
        "the silent connection should have been replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_pause_does_not_wedge_the_connection() {
    let mut server = RedisServer::start();
    let store = redis_store(&server).await;
    store
        .create(&new_session("q", "carol"), HOUR)
        .await
        .unwrap();
    let before = other_client_ids(&server);
    server.pause();
    assert_eq!(store.get("q").await, Err(StoreError::Timeout));
    server.resume();
    // Resumed before the probe gave up: the same connection carries on, in order.
    let recovered = wait_until_answers(&store, Duration::from_secs(10)).await;
    assert!(recovered < Duration::from_secs(3), "{recovered:?}");
    assert_eq!(store.get("q").await.unwrap().unwrap().user_id, "carol");
    assert_eq!(other_client_ids(&server), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_gets_share_one_connection() {
    let server = RedisServer::start();
    // Generous deadline: the machine is shared, this is not a benchmark.
    let store = SessionStore::connect(&cfg(&server, Duration::from_secs(5), 8))
        .await
        .unwrap();
    let store = Arc::new(store);
    store
        .create(&new_session("hot", "dave"), HOUR)
        .await
        .unwrap();

    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get("hot").await })
        })
        .collect();
    for call in calls {
        let record = call.await.unwrap().unwrap().expect("session");
        assert_eq!(record.user_id, "dave");
    }

    // Our shared connection, the revocations' own and the inspecting one: multiplexed, not
    // one per request.
    assert_eq!(connected_clients(&server), 3);
}

/// `connected_clients` of INFO, the inspecting connection included.
fn connected_clients(server: &RedisServer) -> u64 {
    let mut raw = server.connection();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut raw).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connected_clients in {info}"))
}

/// Ids of the server's clients other than the inspecting connection.
fn other_client_ids(server: &RedisServer) -> Vec<u64> {
    let mut raw = server.connection();
    let own: u64 = redis::cmd("CLIENT").arg("ID").query(&mut raw).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut raw).unwrap();
    let mut ids: Vec<u64> = list
        .lines()
        .filter_map(|l| l.strip_prefix("id="))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .filter(|id| *id != own)
        .collect();
    ids.sort_unstable();
    ids
}
