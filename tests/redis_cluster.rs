//! The session store on a real 3-master Redis Cluster (redis-server `--cluster-enabled yes`,
//! joined by `redis-cli --cluster create`): the auth center's multi-key operations (login,
//! refresh rotation and reuse, logout, kick, sign out everywhere, the login limit) with keys
//! spread over the masters, the session cache kept coherent by every master, another service's
//! one-`DEL` revocation, and the same over TLS with a password.

mod support;

use std::time::{Duration, Instant};

use support::auth::{self, call, login, login_ok, refresh, Pair};
use support::client::{Client, Proto};
use support::gateway::TestGateway;
use support::redis::{Opts, RedisCluster, TestCa};
use support::upstream::Upstream;

const PW: &str = "correct horse battery staple";

fn session(cluster: &RedisCluster, extra: &str) -> String {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[session]\nstore = \"redis\"\nredis_cluster = [{}]\nkey_prefix = \"gw:\"\ntimeout = \"500ms\"\n{extra}\n",
        urls.join(", ")
    )
}

/// Writes `{P}user:{name}` through the cluster.
fn add_user(cluster: &RedisCluster, name: &str, roles: &[&str]) {
    auth::add_user_on(&mut cluster.connection(), name, PW, roles);
}

/// Polls (bounded) until `token` gets `want` on `c`.
async fn until(c: &Client, token: &str, want: u16) {
    let started = Instant::now();
    loop {
        let got = c.get("/api/x", Some(token)).await.status;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_center_on_a_cluster_spreads_sessions_and_keeps_every_operation_atomic() {
    let cluster = RedisCluster::start(3, Opts::default());
    let up = Upstream::start().await;
    let gw = auth::start(&session(&cluster, ""), "", &up).await;
    let gw2 =
        TestGateway::start_sharing_keys(&gw, &session(&cluster, ""), &auth::routes(&up)).await;
    add_user(&cluster, "alice", &["admin"]);
    add_user(&cluster, "bob", &[]);
    gw.wait_cache_live().await;
    gw2.wait_cache_live().await;
    let c = gw.client(Proto::H1);
    let c2 = gw2.client(Proto::H2);

    // Logins: even ones alice's, odd ones bob's.
    let mut pairs: Vec<Pair> = Vec::new();
    for i in 0..12 {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        pairs.push(login_ok(&c, user, PW, Some(&format!("device{i}"))).await);
    }
    for p in &pairs {
        assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
        assert_eq!(c2.get("/api/x", Some(&p.access)).await.status, 200);
        assert!(
            p.refresh.starts_with(&p.sid),
            "the refresh token names its session"
        );
    }
    // Served from the session cache (kept coherent by every master), not read each time.
    let hits = |gw: &TestGateway| {
        let cache = gw.gw.auth().session_cache().unwrap();
        cache
            .stats()
            .hits
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = hits(&gw2);
    for p in &pairs {
        assert_eq!(c2.get("/api/x", Some(&p.access)).await.status, 200);
    }
    assert!(hits(&gw2) >= before + 12, "{} -> {}", before, hits(&gw2));

    // The session hashes are spread over the masters, each under its id's tag.
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("gw:session:*")
                .query(&mut n.connection())
                .unwrap();
            keys.len()
        })
        .collect();
    assert_eq!(per_node.iter().sum::<usize>(), 12, "{per_node:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "sessions on one master only: {per_node:?}"
    );
    let mut con = cluster.connection();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("gw:session:{{{}}}", pairs[0].sid))
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 1);

    // Refresh rotation, then the spent token shown again: the session is revoked.
    let p = &pairs[0];
    let r = refresh(&c, &p.refresh, Some("device0")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = Pair::from(&r);
    assert_eq!(rotated.sid, p.sid);
    assert_eq!(c.get("/api/x", Some(&rotated.access)).await.status, 200);
    let r = refresh(&c, &p.refresh, Some("device0")).await;
    assert_eq!(r.status, 401);
    assert_eq!(c.get("/api/x", Some(&rotated.access)).await.status, 401);
    until(&c2, &rotated.access, 401).await;
    assert_eq!(
        refresh(&c, &rotated.refresh, Some("device0")).await.status,
        401
    );

    // Logout.
    let r = call(
        &c,
        "POST",
        "/auth/logout",
        None,
        Some(&pairs[1].access),
        &[],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(c.get("/api/x", Some(&pairs[1].access)).await.status, 401);
    until(&c2, &pairs[1].access, 401).await;

    // Kick: alice ends her session 4 from session 2; the list shows what is left.
    let path = format!("/auth/sessions/{}", pairs[4].sid);
    let r = call(&c, "DELETE", &path, None, Some(&pairs[2].access), &[]).await;
    assert_eq!(r.status, 204);
    until(&c2, &pairs[4].access, 401).await;
    let r = call(
        &c,
        "GET",
        "/auth/sessions",
        None,
        Some(&pairs[2].access),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let mut listed: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want: Vec<String> = [2, 6, 8, 10]
        .iter()
        .map(|i| pairs[*i].sid.clone())
        .collect();
    want.sort();
    assert_eq!(listed, want);

    // Another service revokes with one DEL of the documented key: every instance refuses.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("gw:session:{{{}}}", pairs[6].sid))
        .query(&mut con)
        .unwrap();
    until(&c, &pairs[6].access, 401).await;
    until(&c2, &pairs[6].access, 401).await;

    // Sign out everywhere: every one of bob's sessions, on whichever master it is.
    let r = call(
        &c2,
        "DELETE",
        "/auth/sessions",
        None,
        Some(&pairs[3].access),
        &[],
    )
    .await;
    assert_eq!(r.status, 204);
    for i in [3, 5, 7, 9, 11] {
        assert_eq!(c2.get("/api/x", Some(&pairs[i].access)).await.status, 401);
        until(&c, &pairs[i].access, 401).await;
    }
    for i in [2, 8, 10] {
        assert_eq!(c.get("/api/x", Some(&pairs[i].access)).await.status, 200);
    }

    // The login limit: five failures lock the name, even for the right password.
    for _ in 0..5 {
        assert_eq!(login(&c, "alice", "wrong password", None).await.status, 401);
    }
    assert_eq!(login(&c, "alice", PW, None).await.status, 429);
    assert_eq!(login(&c, "bob", PW, None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_a_password() {
    let ca = TestCa::new();
    let cluster = RedisCluster::start(
        3,
        Opts {
            tls: Some(ca.clone()),
            password: Some(PW.into()),
            ..Opts::default()
        },
    );
    std::env::set_var("GW_TEST_REDIS_PW_CLUSTER", PW);
    let extra = format!(
        "redis_password_env = \"GW_TEST_REDIS_PW_CLUSTER\"\nredis_ca = \"{}\"",
        ca.ca().display()
    );
    let up = Upstream::start().await;
    let gw = auth::start(&session(&cluster, &extra), "", &up).await;
    add_user(&cluster, "alice", &[]);
    gw.wait_cache_live().await;
    let c = gw.client(Proto::H1);
    let p = login_ok(&c, "alice", PW, Some("laptop")).await;
    assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
    let r = refresh(&c, &p.refresh, Some("laptop")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = Pair::from(&r);
    let _: i64 = redis::cmd("DEL")
        .arg(format!("gw:session:{{{}}}", p.sid))
        .query(&mut cluster.connection())
        .unwrap();
    until(&c, &p.access, 401).await;
}

/// A login adds its id to the user's set, writes the session on another slot, then adds the
/// id again; a list (which prunes ids whose session is missing) or a sign-out-everywhere
/// falling in between must not leave the new session out of the set, where a later
/// sign-out-everywhere could not find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_never_left_out_of_its_users_set() {
    let cluster = RedisCluster::start(3, Opts::default());
    let up = Upstream::start().await;
    let gw = auth::start(&session(&cluster, ""), "", &up).await;
    add_user(&cluster, "alice", &[]);
    gw.wait_cache_live().await;
    let c = std::sync::Arc::new(gw.client(Proto::H1));
    let mut anchor = login_ok(&c, "alice", PW, Some("anchor")).await;
    // Sessions enough that a list or a sign-out (one call per session on a cluster) takes
    // a while, so the racing login falls inside it.
    for i in 0..10 {
        login_ok(&c, "alice", PW, Some(&format!("pad{i}"))).await;
    }
    let mut logins: Vec<Pair> = Vec::new();
    let started = Instant::now();
    for round in 0..16 {
        if started.elapsed() > Duration::from_secs(90) {
            break;
        }
        let cl = c.clone();
        let device = format!("racer{round}");
        let racer = tokio::spawn(async move { login(&cl, "alice", PW, Some(&device)).await });
        if round % 2 == 1 {
            let bearer = format!("Bearer {}", anchor.access);
            let signout = c
                .req("DELETE", "/auth/sessions")
                .header("authorization", bearer);
            let r = c.send(signout.body(Default::default()).unwrap()).await;
            assert_eq!(r.status, 204);
            for i in 0..6 {
                login_ok(&c, "alice", PW, Some(&format!("pad{round}-{i}"))).await;
            }
            anchor = login_ok(&c, "alice", PW, Some("anchor")).await;
        } else {
            let listers: Vec<_> = (0..4)
                .map(|_| {
                    let (cl, access) = (c.clone(), anchor.access.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        for _ in 0..200 {
                            if t.elapsed() > Duration::from_millis(1500) {
                                break;
                            }
                            let r =
                                call(&cl, "GET", "/auth/sessions", None, Some(&access), &[]).await;
                            assert_eq!(r.status, 200);
                        }
                    })
                })
                .collect();
            for l in listers {
                l.await.unwrap();
            }
        }
        let r = racer.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        logins.push(Pair::from(&r));
    }
    // Whatever raced what, one sign-out-everywhere ends every session.
    let r = call(
        &c,
        "DELETE",
        "/auth/sessions",
        None,
        Some(&anchor.access),
        &[],
    )
    .await;
    assert_eq!(r.status, 204);
    for p in &logins {
        assert_eq!(
            c.get("/api/x", Some(&p.access)).await.status,
            401,
            "{} survived",
            p.sid
        );
        assert_eq!(refresh(&c, &p.refresh, None).await.status, 401);
    }
}
