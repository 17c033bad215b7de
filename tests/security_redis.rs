//! Adversarial tests, docs/security.md ("Why 503, not 401, when Redis is down?") and docs/contract.md ("Session keys in Redis"), against a real Redis: session
//! hashes written by another service that disagree with the token, carry garbage, or are of
//! the wrong type, and the 503 semantics of optional routes when Redis is gone.

mod support;

use support::client::{Proto, BOTH};
use support::gateway::{route, TestGateway};

/// Strict mode (no session cache): these tests rewrite hashes and read them back at once.
fn redis_session(url: &str) -> String {
    format!("{}cache = false\n", support::gateway::redis_session(url))
}
use support::redis::RedisServer;
use support::upstream::Upstream;

fn routes(up: &Upstream) -> String {
    [
        route("/api/", &up.url(), ""),
        route("/admin/", &up.url(), "roles = [\"admin\"]"),
        route("/maybe/", &up.url(), "auth = \"optional\""),
        route("/public/", &up.url(), "auth = \"public\""),
    ]
    .concat()
}

fn redis(redis: &RedisServer, args: &[&[u8]]) {
    let mut con = redis.connection();
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(&mut con).unwrap();
}

fn hset(r: &RedisServer, sid: &str, fields: &[(&str, &[u8])]) {
    let key = format!("gw:session:{sid}");
    let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
    for (k, v) in fields {
        args.push(k.as_bytes());
        args.push(v);
    }
    redis(r, &args);
    redis(r, &[b"EXPIRE", key.as_bytes(), b"600"]);
}

#[tokio::test]
async fn session_user_id_must_match_the_token_exactly() {
    let r = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&r.url()), &routes(&up)).await;
    let cases: &[(&str, &[u8])] = &[
        ("case", b"Alice"),
        ("trailing space", b"alice "),
        ("leading space", b" alice"),
        ("nul", b"alice\0"),
        ("empty", b""),
        ("prefix", b"alic"),
        ("longer", b"alice2"),
        ("invalid utf8", b"alice\xff"),
    ];
    for (i, (label, user)) in cases.iter().enumerate() {
        let sid = format!("mm-{i}");
        hset(&r, &sid, &[("user_id", user), ("roles", b"admin")]);
        let token = gw.token("alice", &sid, &[]);
        for proto in BOTH {
            for path in ["/api/x", "/admin/x", "/maybe/x"] {
                let s = gw.client(proto).get(path, Some(&token)).await.status;
                assert_eq!(s, 401, "{proto:?} {path} session user {label}");
            }
        }
    }
    // A session with no user_id at all, only other fields.
    hset(&r, "nouser", &[("roles", b"admin"), ("created_at", b"1")]);
    let token = gw.token("alice", "nouser", &[]);
    assert_eq!(
        gw.client(Proto::H1)
            .get("/api/x", Some(&token))
            .await
            .status,
        401
    );
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn garbage_fields_and_odd_roles_in_the_session_hash() {
    let r = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&r.url()), &routes(&up)).await;
    // Extra and garbage fields are ignored; the identity is the token's user.
    hset(
        &r,
        "g1",
        &[
            ("user_id", b"alice"),
            ("created_at", b"not a number"),
            ("refresh_count", b"\xff\xfe"),
            ("ip", b"\x00\x01"),
            ("X-User-Id", b"root"),
            ("user_id ", b"root"),
            ("USER_ID", b"root"),
            ("roles ", b"admin"),
            ("Roles", b"admin"),
        ],
    );
    let t = gw.token("alice", "g1", &["user"]);
    for proto in BOTH {
        let c = gw.client(proto);
        assert_eq!(c.get("/api/x", Some(&t)).await.status, 200, "{proto:?}");
        let got = up.last();
        assert_eq!(got.all("x-user-id"), vec!["alice"]);
        assert_eq!(got.all("x-user-roles"), vec!["user"], "token roles apply");
        assert_eq!(c.get("/admin/x", Some(&t)).await.status, 403, "{proto:?}");
    }

    // roles with spaces and empties: trimmed, empties dropped.
    let cases: &[(&[u8], &str, u16)] = &[
        (b"  admin , , user ,,", "admin,user", 200),
        (b",,,", "", 403),
        (b"", "", 403),
        (b"   ", "", 403),
        (b"user,admin", "user,admin", 200),
        (b"\tadmin", "admin", 200),
    ];
    for (i, (roles, header, admin_status)) in cases.iter().enumerate() {
        let sid = format!("r{i}");
        hset(&r, &sid, &[("user_id", b"alice"), ("roles", roles)]);
        let t = gw.token("alice", &sid, &["admin"]);
        for proto in BOTH {
            let c = gw.client(proto);
            let label = String::from_utf8_lossy(roles);
            assert_eq!(c.get("/api/x", Some(&t)).await.status, 200, "{label:?}");
            assert_eq!(
                up.last().all("x-user-roles"),
                vec![header.to_string()],
                "{proto:?} roles {label:?}"
            );
            assert_eq!(
                c.get("/admin/x", Some(&t)).await.status.as_u16(),
                *admin_status,
                "{proto:?} roles {label:?}"
            );
        }
    }
    // Whitespace separates roles as commas do (as in the token's roles claim), so the gateway
    // and the header it sends agree: "user admin" is two roles, sent as "user,admin".
    for (i, roles) in [&b"user admin"[..], b"user\nadmin", b"user\t admin"]
        .iter()
        .enumerate()
    {
        let sid = format!("ws{i}");
        hset(&r, &sid, &[("user_id", b"alice"), ("roles", roles)]);
        let t = gw.token("alice", &sid, &[]);
        for proto in BOTH {
            let c = gw.client(proto);
            assert_eq!(c.get("/admin/x", Some(&t)).await.status, 200, "{proto:?}");
            assert_eq!(
                up.last().all("x-user-roles"),
                vec!["user,admin".to_string()]
            );
        }
    }
    // Roles that are not plain names never grant "admin" by being split differently.
    for (i, roles) in [&b"user;admin"[..], b"user\0,admin2", b"ADMIN", b"admin\x00"]
        .iter()
        .enumerate()
    {
        let sid = format!("w{i}");
        hset(&r, &sid, &[("user_id", b"alice"), ("roles", roles)]);
        let t = gw.token("alice", &sid, &["admin"]);
        for proto in BOTH {
            let c = gw.client(proto);
            let label = String::from_utf8_lossy(roles);
            let s = c.get("/admin/x", Some(&t)).await.status.as_u16();
            assert!(s == 403 || s == 401, "{proto:?} roles {label:?}: {s}");
            let s = c.get("/api/x", Some(&t)).await.status.as_u16();
            if s == 200 {
                let sent = up.last().all("x-user-roles");
                assert_eq!(sent.len(), 1);
                assert!(
                    !sent[0].split(',').any(|r| r == "admin"),
                    "{label:?} -> {sent:?}"
                );
            } else {
                assert_eq!(s, 401, "{proto:?} roles {label:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_session_key_of_the_wrong_type_is_never_a_pass() {
    let r = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&r.url()), &routes(&up)).await;
    redis(&r, &[b"SET", b"gw:session:str", b"alice"]);
    redis(&r, &[b"RPUSH", b"gw:session:list", b"user_id", b"alice"]);
    redis(&r, &[b"SADD", b"gw:session:set", b"user_id", b"alice"]);
    redis(&r, &[b"ZADD", b"gw:session:zset", b"1", b"alice"]);
    for sid in ["str", "list", "set", "zset"] {
        let t = gw.token("alice", sid, &[]);
        for proto in BOTH {
            for path in ["/api/x", "/maybe/x"] {
                let s = gw.client(proto).get(path, Some(&t)).await.status.as_u16();
                assert!(s == 503 || s == 401, "{proto:?} {path} {sid}: {s}");
                eprintln!("wrong-type session key {sid} on {path} ({proto:?}): {s}");
            }
        }
    }
    // A sid that looks like a pattern is an exact key, never a glob.
    redis(&r, &[b"HSET", b"gw:session:real", b"user_id", b"alice"]);
    for sid in ["*", "rea?", "r[e]al", "real ", "gw:session:real"] {
        let t = gw.token("alice", sid, &[]);
        let s = gw.client(Proto::H1).get("/api/x", Some(&t)).await.status;
        assert_eq!(s, 401, "sid {sid:?}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn with_redis_down_optional_routes_never_serve_a_token_holder_anonymously() {
    let mut r = RedisServer::start();
    let up = Upstream::start().await;
    let gw = TestGateway::start(&redis_session(&r.url()), &routes(&up)).await;
    hset(&r, "s1", &[("user_id", b"alice")]);
    let token = gw.token("alice", "s1", &[]);
    assert_eq!(
        gw.client(Proto::H1)
            .get("/maybe/x", Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(up.last().all("x-user-id"), vec!["alice"]);
    r.stop();
    for proto in BOTH {
        let c = gw.client(proto);
        let before = up.count();
        let resp = c.get("/maybe/x", Some(&token)).await;
        assert_eq!(resp.status, 503, "{proto:?}: optional + valid token");
        assert!(resp.header("retry-after").is_some());
        let resp = c.get("/api/x", Some(&token)).await;
        assert_eq!(resp.status, 503, "{proto:?}");
        assert_eq!(
            up.count(),
            before,
            "{proto:?}: forwarded while the store was down"
        );
        // No token: no store needed. Bad token: refused before the store.
        assert_eq!(c.get("/maybe/x", None).await.status, 200, "{proto:?}");
        assert!(up.last().all("x-user-id").is_empty());
        assert_eq!(
            c.get("/maybe/x", Some("a.b.c")).await.status,
            401,
            "{proto:?}"
        );
        assert_eq!(c.get("/api/x", None).await.status, 401, "{proto:?}");
        assert_eq!(c.get("/public/x", Some(&token)).await.status, 200);
        assert!(up.last().all("x-user-id").is_empty());
    }
}
