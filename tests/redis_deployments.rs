//! Redis as it is deployed (docs/contract.md, "Redis as it is deployed"), each against real
//! redis-server processes on loopback ports: TLS with a CA made here and a password from the
//! environment (and a certificate that does not verify failing closed, never falling back to
//! plaintext), a master with a replica confirming revocations (`WAIT`; a paused replica makes
//! a revocation 503), and Sentinel following a killed master without a restart.

mod support;

use std::time::{Duration, Instant};

use support::client::{Proto, BOTH};
use support::gateway::{route, TestGateway};
use support::redis::{Opts, RedisServer, TestCa};
use support::upstream::Upstream;

const PASSWORD: &str = "correct horse battery staple";

fn session(redis_lines: &str, cache: bool) -> String {
    format!(
        "[session]\nstore = \"redis\"\n{redis_lines}\nkey_prefix = \"gw:\"\ntimeout = \"300ms\"\ncache = {cache}\n"
    )
}

/// Session-cache hits so far.
fn cache_hits(gw: &TestGateway) -> u64 {
    let cache = gw.gw.auth().session_cache().expect("cache on");
    cache
        .stats()
        .hits
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn routes(up: &Upstream) -> String {
    route("/api/", &up.url(), "")
}

/// A variable of this test's own holding the password (tests run in one process).
fn password_env(name: &str) -> String {
    // Each test sets a variable of its own name, so parallel tests never race on one.
    std::env::set_var(name, PASSWORD);
    name.to_owned()
}

fn toml_path(p: &std::path::Path) -> String {
    p.display().to_string().replace('\\', "/")
}

fn tls_opts(ca: &TestCa) -> Opts {
    Opts {
        tls: Some(ca.clone()),
        password: Some(PASSWORD.into()),
        ..Opts::default()
    }
}

#[tokio::test]
async fn tls_with_a_private_ca_and_a_password_from_the_environment() {
    let ca = TestCa::new();
    let redis = RedisServer::start_with(tls_opts(&ca));
    let up = Upstream::start().await;
    let env = password_env("GW_TEST_REDIS_PW_TLS");
    let lines = format!(
        "redis_url = \"{}\"\nredis_password_env = \"{env}\"\nredis_ca = \"{}\"",
        redis.url(),
        toml_path(&ca.ca())
    );
    for cache in [false, true] {
        let gw = TestGateway::start(&session(&lines, cache), &routes(&up)).await;
        let sid = format!("tls-{cache}");
        gw.create_session(&sid, "alice", None).await;
        // The session is in the TLS Redis.
        let mut con = redis.client().get_connection().unwrap();
        let user: Option<String> = redis::cmd("HGET")
            .arg(format!("gw:session:{sid}"))
            .arg("user_id")
            .query(&mut con)
            .unwrap();
        assert_eq!(user.as_deref(), Some("alice"));
        let token = gw.token("alice", &sid, &[]);
        if cache {
            gw.wait_cache_live().await;
        }
        for proto in BOTH {
            let r = gw.client(proto).get("/api/x", Some(&token)).await;
            assert_eq!(r.status, 200, "cache={cache} {proto:?}");
        }
        if cache {
            assert!(
                cache_hits(&gw) >= 1,
                "the second request is served from the cache"
            );
        }
        // Revoked by another service over TLS: refused at once (the cache's invalidation
        // link is on TLS too).
        let _: i64 = redis::cmd("DEL")
            .arg(format!("gw:session:{sid}"))
            .query(&mut con)
            .unwrap();
        let r = gw.client(Proto::H1).get("/api/x", Some(&token)).await;
        assert_eq!(r.status, 401, "cache={cache}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_a_failed_connection_never_plaintext() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let tls_redis = RedisServer::start_with(tls_opts(&ca));
    // A plaintext Redis behind a rediss:// URL: the handshake fails, nothing is sent in clear.
    let plain_redis = RedisServer::start_with(Opts {
        password: Some(PASSWORD.into()),
        ..Opts::default()
    });
    let up = Upstream::start().await;
    let env = password_env("GW_TEST_REDIS_PW_BADCA");
    let cases = [
        (
            "a CA that did not sign the server's certificate",
            tls_redis.url(),
            Some(other_ca.ca()),
        ),
        (
            "no CA: the system's roots do not know the test CA",
            tls_redis.url(),
            None,
        ),
        (
            "rediss:// to a plaintext server",
            plain_redis.url().replace("redis://", "rediss://"),
            Some(ca.ca()),
        ),
    ];
    for (what, url, ca_file) in cases {
        let mut lines = format!("redis_url = \"{url}\"\nredis_password_env = \"{env}\"");
        if let Some(f) = ca_file {
            lines.push_str(&format!("\nredis_ca = \"{}\"", toml_path(&f)));
        }
        let gw = TestGateway::start(&session(&lines, true), &routes(&up)).await;
        let token = gw.token("alice", "s1", &[]);
        for proto in BOTH {
            let r = gw.client(proto).get("/api/x", Some(&token)).await;
            assert_eq!(r.status, 503, "{what} {proto:?}");
            assert_eq!(r.error_code(), "session_store_unavailable", "{what}");
        }
        gw.stop().await;
    }
    assert_eq!(up.count(), 0, "nothing passed");
    // The plaintext server never saw a command: the password was never sent in clear.
    let mut con = plain_redis.client().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    let processed: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    // Our own INFO (and the readiness PING and AUTH of the test client) only.
    assert!(
        processed <= 5,
        "{processed} commands reached the plaintext server"
    );
}

#[tokio::test]
async fn a_wrong_password_is_503() {
    let redis = RedisServer::start_with(Opts {
        password: Some(PASSWORD.into()),
        ..Opts::default()
    });
    let up = Upstream::start().await;
    std::env::set_var("GW_TEST_REDIS_PW_WRONG", "not the password");
    let lines = format!(
        "redis_url = \"{}\"\nredis_password_env = \"GW_TEST_REDIS_PW_WRONG\"",
        redis.url()
    );
    let gw = TestGateway::start(&session(&lines, false), &routes(&up)).await;
    let r = gw
        .client(Proto::H1)
        .get("/api/x", Some(&gw.token("alice", "s1", &[])))
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(up.count(), 0);
}

/// A master run with `opts` and a replica of it (run the same way), in sync.
fn master_and_replica(opts: Opts) -> (RedisServer, RedisServer) {
    let master = RedisServer::start_with(opts.clone());
    let replica = RedisServer::start_with(Opts {
        replica_of: Some(master.port()),
        ..opts
    });
    wait_for_sync(&master, &replica);
    (master, replica)
}

/// Polls until the replica has caught up with everything the master has (bounded).
fn wait_for_sync(master: &RedisServer, replica: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut m = master.client().get_connection().unwrap();
    let mut r = replica.client().get_connection().unwrap();
    loop {
        let role: redis::Role = redis::cmd("ROLE").query(&mut m).unwrap();
        let master_offset = match role {
            redis::Role::Primary {
                replication_offset,
                replicas,
            } if !replicas.is_empty() => Some(replication_offset),
            _ => None,
        };
        let replica_role: redis::Role = redis::cmd("ROLE").query(&mut r).unwrap();
        if let (
            Some(want),
            redis::Role::Replica {
                replication_state,
                data_received,
                ..
            },
        ) = (master_offset, replica_role)
        {
            if replication_state == "connected" && data_received >= want {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_revocation_is_confirmed_by_a_replica_and_503_when_it_cannot_be() {
    let (master, mut replica) = master_and_replica(Opts::default());
    let up = Upstream::start().await;
    let lines = format!("redis_url = \"{}\"", master.url());
    let gw = TestGateway::start(&session(&lines, true), &routes(&up)).await;
    for sid in ["w1", "w2"] {
        gw.create_session(sid, "alice", None).await;
    }
    wait_for_sync(&master, &replica);
    // With the replica answering: 204, and the replica has the revocation already.
    assert_eq!(gw.delete_session("w1").await, 204);
    let mut r = replica.client().get_connection().unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("gw:session:w1")
        .query(&mut r)
        .unwrap();
    assert_eq!(exists, 0, "a 204 means the replica has it");
    drop(r);

    // The replica stops acknowledging: the revocation cannot be confirmed, so 503.
    replica.pause();
    let started = Instant::now();
    assert_eq!(gw.delete_session("w2").await, 503);
    assert!(started.elapsed() < Duration::from_secs(3));
    // It is in effect on the master meanwhile: the session is refused.
    let token = gw.token("alice", "w2", &[]);
    assert_eq!(
        gw.client(Proto::H1)
            .get("/api/x", Some(&token))
            .await
            .status,
        401
    );
    // Other requests are not held up by the waiting revocation's connection.
    gw.create_session("w3", "alice", None).await;
    let t3 = gw.token("alice", "w3", &[]);
    assert_eq!(
        gw.client(Proto::H1).get("/api/x", Some(&t3)).await.status,
        200
    );
    // Back: the retried revocation is confirmed.
    replica.resume();
    wait_for_sync(&master, &replica);
    assert_eq!(gw.delete_session("w3").await, 204);
}

#[tokio::test]
async fn sentinel_follows_a_killed_master_without_a_restart() {
    let (mut master, replica) = master_and_replica(Opts::default());
    let sentinel = RedisServer::start_with(Opts {
        sentinel_of: Some(("gwmaster".into(), master.port())),
        ..Opts::default()
    });
    let up = Upstream::start().await;
    let lines = format!(
        "redis_sentinel = {{ master = \"gwmaster\", nodes = [\"redis://127.0.0.1:{}\"] }}",
        sentinel.port()
    );
    let gw = TestGateway::start(&session(&lines, true), &routes(&up)).await;
    let other = TestGateway::start_sharing_keys(&gw, &session(&lines, true), &routes(&up)).await;
    for sid in ["live", "revoked", "after"] {
        gw.create_session(sid, "alice", None).await;
    }
    let live = gw.token("alice", "live", &[]);
    let revoked = gw.token("alice", "revoked", &[]);
    for g in [&gw, &other] {
        assert_eq!(
            g.client(Proto::H1).get("/api/x", Some(&live)).await.status,
            200
        );
        assert_eq!(
            g.client(Proto::H1)
                .get("/api/x", Some(&revoked))
                .await
                .status,
            200
        );
    }
    // Revoked before the failover, confirmed by the replica: it must stay revoked after.
    assert_eq!(gw.delete_session("revoked").await, 204);
    wait_for_sync(&master, &replica);

    master.stop();
    // During the switch: 503 or (once the replica is promoted) 200 for the live session,
    // never a pass for the revoked one.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut saw_503 = false;
    loop {
        let mut all_back = true;
        for g in [&gw, &other] {
            let r = g.client(Proto::H1).get("/api/x", Some(&revoked)).await;
            assert!(
                r.status == 401 || r.status == 503,
                "the revoked session answered {}",
                r.status
            );
            let r = g.client(Proto::H1).get("/api/x", Some(&live)).await;
            assert!(r.status == 200 || r.status == 503, "live: {}", r.status);
            saw_503 |= r.status == 503;
            all_back &= r.status == 200;
        }
        if all_back && saw_503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover within 40s; sentinel log:\n{}",
            sentinel.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // On the new master: revocations work and reach the other instance's cache at once (its
    // invalidation link moved to the new master).
    let after = gw.token("alice", "after", &[]);
    other.wait_cache_live().await;
    let hits = cache_hits(&other);
    for _ in 0..2 {
        assert_eq!(
            other
                .client(Proto::H1)
                .get("/api/x", Some(&after))
                .await
                .status,
            200
        );
    }
    assert!(
        cache_hits(&other) > hits,
        "the cache serves again on the new master"
    );
    // Behind Sentinel a revocation needs a replica's confirmation, and the new master has
    // none yet (its old master is dead): 503, the client may retry...
    assert_eq!(gw.delete_session("after").await, 503);
    // ... and once a replica of the new master is up, the retry is confirmed (the session is
    // gone already: the first attempt took effect on the master, so "no such session").
    let new_replica = RedisServer::start_with(Opts {
        replica_of: Some(replica.port()),
        ..Opts::default()
    });
    wait_for_sync(&replica, &new_replica);
    assert_eq!(gw.delete_session("after").await, 404);
    let mut nr = new_replica.client().get_connection().unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("gw:session:after")
        .query(&mut nr)
        .unwrap();
    assert_eq!(exists, 0);
    assert_eq!(
        other
            .client(Proto::H1)
            .get("/api/x", Some(&after))
            .await
            .status,
        401
    );
    let mut r = replica.client().get_connection().unwrap();
    let role: redis::Role = redis::cmd("ROLE").query(&mut r).unwrap();
    assert!(matches!(role, redis::Role::Primary { .. }), "{role:?}");
}

/// The master lists no replica (`ROLE`) once it has dropped the replica's link: a master that
/// had one must not confirm a revocation alone, since a failover may promote that replica.
#[tokio::test]
async fn a_master_whose_replica_link_dropped_does_not_confirm_alone() {
    let (master, mut replica) = master_and_replica(Opts::default());
    let up = Upstream::start().await;
    let lines = format!("redis_url = \"{}\"", master.url());
    let gw = TestGateway::start(&session(&lines, false), &routes(&up)).await;
    for sid in ["v1", "v2"] {
        gw.create_session(sid, "alice", None).await;
    }
    wait_for_sync(&master, &replica);
    assert_eq!(gw.delete_session("v1").await, 204, "a replica was seen");
    replica.pause();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut master.client().get_connection().unwrap())
        .unwrap();
    assert_eq!(gw.delete_session("v2").await, 503);
    replica.resume();
}

/// A refresh that a replica cannot confirm answers 503, though the master has rotated: the
/// retry the 503 asks for (same token, same device) gets the same successor, not a reuse.
#[tokio::test]
async fn an_unconfirmed_refresh_can_be_retried() {
    let (master, mut replica) = master_and_replica(Opts::default());
    let up = Upstream::start().await;
    support::auth::add_user(&master, "bob", PASSWORD, &[]);
    let gw = support::auth::start(
        &session(&format!("redis_url = \"{}\"", master.url()), true),
        "",
        &up,
    )
    .await;
    let c = gw.client(Proto::H1);
    let p = support::auth::login_ok(&c, "bob", PASSWORD, Some("dev1")).await;
    wait_for_sync(&master, &replica);
    replica.pause();
    let r = support::auth::refresh(&c, &p.refresh, Some("dev1")).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.error_code(), "session_store_unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    replica.resume();
    wait_for_sync(&master, &replica);
    let r = support::auth::refresh(&c, &p.refresh, Some("dev1")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let next = support::auth::Pair::from(&r);
    assert_eq!(c.get("/api/x", Some(&next.access)).await.status, 200);
    // The successor works, and the spent token from another device is still reuse.
    let r = support::auth::refresh(&c, &next.refresh, Some("dev1")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// Split brain: the sentinels name a new master, the old one (cut off from them) still says
/// "master". An instance connected to the old one leaves it for the sentinels' master.
#[tokio::test]
async fn an_instance_on_a_master_the_sentinels_abandoned_moves() {
    let (master, replica) = master_and_replica(Opts::default());
    let sentinel = RedisServer::start_with(Opts {
        sentinel_of: Some(("gwmaster".into(), master.port())),
        ..Opts::default()
    });
    let up = Upstream::start().await;
    let lines = format!(
        "redis_sentinel = {{ master = \"gwmaster\", nodes = [\"redis://127.0.0.1:{}\"] }}",
        sentinel.port()
    );
    let a = TestGateway::start(&session(&lines, true), &routes(&up)).await;
    a.create_session("s1", "alice", None).await;
    wait_for_sync(&master, &replica);
    let t1 = a.token("alice", "s1", &[]);
    assert_eq!(
        a.client(Proto::H1).get("/api/x", Some(&t1)).await.status,
        200
    );
    // As the sentinels see a partition: the replica is promoted and named; the old master
    // is never told.
    let mut r = replica.client().get_connection().unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    let mut s = sentinel.client().get_connection().unwrap();
    let _: () = redis::cmd("SENTINEL")
        .arg("REMOVE")
        .arg("gwmaster")
        .query(&mut s)
        .unwrap();
    let _: () = redis::cmd("SENTINEL")
        .arg("MONITOR")
        .arg("gwmaster")
        .arg("127.0.0.1")
        .arg(replica.port())
        .arg(1)
        .query(&mut s)
        .unwrap();
    // Revoked on the master the sentinels name: instance A follows within its heartbeats.
    let _: i64 = redis::cmd("DEL")
        .arg("gw:session:s1")
        .query(&mut r)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = a.client(Proto::H1).get("/api/x", Some(&t1)).await.status;
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} from the abandoned master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sentinel over TLS: the sentinels (with a password of their own, in their URLs), the master
/// they name and its replica all on `rediss://` with the test CA and `requirepass`.
#[tokio::test]
async fn sentinel_over_tls_with_passwords() {
    let ca = TestCa::new();
    let (master, replica) = master_and_replica(tls_opts(&ca));
    let sentinel = RedisServer::start_with(Opts {
        sentinel_of: Some(("gwmaster".into(), master.port())),
        ..tls_opts(&ca)
    });
    let up = Upstream::start().await;
    let env = password_env("GW_TEST_REDIS_PW_SENTINEL_TLS");
    let lines = format!(
        "redis_sentinel = {{ master = \"gwmaster\", nodes = [\"rediss://:{}@127.0.0.1:{}\"] }}\nredis_password_env = \"{env}\"\nredis_ca = \"{}\"",
        PASSWORD.replace(' ', "%20"),
        sentinel.port(),
        toml_path(&ca.ca())
    );
    let gw = TestGateway::start(&session(&lines, true), &routes(&up)).await;
    gw.wait_cache_live().await;
    gw.create_session("t1", "alice", None).await;
    let token = gw.token("alice", "t1", &[]);
    assert_eq!(
        gw.client(Proto::H1)
            .get("/api/x", Some(&token))
            .await
            .status,
        200
    );
    wait_for_sync(&master, &replica);
    assert_eq!(
        gw.delete_session("t1").await,
        204,
        "confirmed by the TLS replica"
    );
    assert_eq!(
        gw.client(Proto::H1)
            .get("/api/x", Some(&token))
            .await
            .status,
        401
    );
}
