//! Forward-auth (`/auth/verify`, docs/contract.md, "Forward-auth"): which headers name the original
//! request, and the README's proxy examples against a real gateway. Both examples are taken
//! from README.md itself and run in a real nginx and a real Traefik (installed by
//! scripts/test.sh) between a client and a recording backend.

#[path = "forward_auth/proxies.rs"]
mod proxies;
mod support;

use support::auth::{self, add_user, call, login_ok, ACCESS_COOKIE};
use support::client::{Client, Proto};
use support::gateway::{redis_session, route, TestGateway};
use support::redis::RedisServer;
use support::upstream::Upstream;

use proxies::Proxy;

const PW: &str = "correct horse battery";

/// The auth test routes plus two routes on one path told apart by host: `/internal/` needs the
/// admin role on `internal.test` and is public elsewhere.
fn routes(up: &Upstream) -> String {
    let u = up.url();
    [
        auth::routes(up),
        route(
            "/internal/",
            &u,
            "host = \"internal.test\"\nroles = [\"admin\"]",
        ),
        route("/internal/", &u, "auth = \"public\""),
    ]
    .concat()
}

struct Env {
    gw: TestGateway,
    up: Upstream,
    _redis: RedisServer,
}

impl Env {
    async fn start() -> Env {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let toml = auth::toml(&redis_session(&redis.url()), "", &routes(&up));
        let gw = TestGateway::start_toml(&toml).await;
        add_user(&redis, "alice", PW, &["admin"]);
        add_user(&redis, "bob", PW, &[]);
        Env {
            gw,
            up,
            _redis: redis,
        }
    }

    fn c(&self) -> Client {
        self.gw.client(Proto::H1)
    }

    async fn verify(&self, token: Option<&str>, headers: &[(&str, &str)]) -> support::client::Resp {
        call(&self.c(), "GET", "/auth/verify", None, token, headers).await
    }
}

fn nginx_set<'a>(uri: &'a str, method: &'a str, host: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("x-original-uri", uri),
        ("x-original-method", method),
        ("x-original-host", host),
    ]
}

/// What Traefik's ForwardAuth sends (its own X-Forwarded-*, then the allowed client headers).
fn traefik_set<'a>(uri: &'a str, method: &'a str, host: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", host),
        ("x-forwarded-uri", uri),
        ("x-forwarded-for", "192.0.2.7"),
    ]
}

#[tokio::test]
async fn x_original_uri_wins_over_a_clients_forwarded_headers() {
    let env = Env::start().await;
    let bob = login_ok(&env.c(), "bob", PW, Some("d")).await;
    // The bypass of issue 9: a client's X-Forwarded-Uri naming a public route.
    let mut h = nginx_set("/admin/x", "GET", "localhost").to_vec();
    h.extend([
        ("x-forwarded-uri", "/public/"),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "localhost"),
    ]);
    assert_eq!(env.verify(Some(&bob.access), &h).await.status, 403);
    assert_eq!(env.verify(None, &h).await.status, 401);
    // The nginx set alone decides, in both directions.
    let public = nginx_set("/public/x", "GET", "localhost");
    let r = env.verify(None, &public).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-id"), None);
}

#[tokio::test]
async fn the_original_host_picks_host_routes() {
    let env = Env::start().await;
    let bob = login_ok(&env.c(), "bob", PW, Some("d")).await;
    let alice = login_ok(&env.c(), "alice", PW, Some("d")).await;
    for (name, set) in [
        (
            "nginx",
            nginx_set("/internal/a", "GET", "Internal.Test:443").to_vec(),
        ),
        (
            "traefik",
            traefik_set("/internal/a", "GET", "internal.test"),
        ),
    ] {
        assert_eq!(
            env.verify(Some(&bob.access), &set).await.status,
            403,
            "{name}"
        );
        let r = env.verify(Some(&alice.access), &set).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("x-user-id"), Some("alice"), "{name}");
    }
    // The same path on another host is the public route.
    let r = env
        .verify(None, &nginx_set("/internal/a", "GET", "other.test"))
        .await;
    assert_eq!(r.status, 200);
    // The subrequest's own Host (the gateway's name) never stands in for the original host.
    let no_host = [
        ("x-original-uri", "/internal/a"),
        ("x-original-method", "GET"),
    ];
    let r = env.verify(Some(&bob.access), &no_host).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn an_ambiguous_original_request_is_refused() {
    let env = Env::start().await;
    let alice = login_ok(&env.c(), "alice", PW, Some("d")).await;
    let base = nginx_set("/api/x", "GET", "localhost");
    let cases: [(&str, &str); 5] = [
        ("x-original-uri", "/public/"),
        ("x-original-method", "POST"),
        ("x-original-host", "internal.test"),
        ("x-original-uri", ""),
        ("x-original-host", "a, b"),
    ];
    for extra in cases {
        let mut h = base.to_vec();
        h.push(extra);
        let r = env.verify(Some(&alice.access), &h).await;
        assert_eq!(r.status, 400, "{extra:?}");
        let code = r.json()["error"].as_str().map(str::to_owned);
        assert!(
            matches!(code.as_deref(), Some("bad_request" | "bad_host")),
            "{code:?}"
        );
        assert_eq!(r.header("x-user-id"), None);
    }
    let mut twice = traefik_set("/api/x", "GET", "localhost");
    twice.push(("x-forwarded-uri", "/public/"));
    assert_eq!(env.verify(Some(&alice.access), &twice).await.status, 400);
    let missing_method = [
        ("x-forwarded-uri", "/api/x"),
        ("x-forwarded-host", "localhost"),
    ];
    assert_eq!(
        env.verify(Some(&alice.access), &missing_method)
            .await
            .status,
        400
    );
}

/// What is authorised is what is served: a target with a fragment (nginx forwards it whole)
/// is 400, and a spelling no route matches is 404 rather than a pass on a bare session.
#[tokio::test]
async fn a_fragment_or_an_unrouted_spelling_is_refused() {
    let env = Env::start().await;
    let alice = login_ok(&env.c(), "alice", PW, Some("d")).await;
    let fragment = nginx_set("/public/x#/../../admin/y", "GET", "localhost");
    let r = env.verify(None, &fragment).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    for uri in ["/ADMIN/x", "/admin./x", "/nowhere/x"] {
        let r = env
            .verify(Some(&alice.access), &nginx_set(uri, "GET", "localhost"))
            .await;
        assert_eq!(r.status, 404, "{uri}: {:?}", r.body);
        assert_eq!(r.header("x-user-id"), None, "{uri}");
    }
}

/// The README's Traefik example: `authRequestHeaders` lets only Authorization and Cookie
/// through, and Traefik adds its own X-Forwarded-*; this is what /verify then receives.
#[tokio::test]
async fn the_traefik_header_set() {
    let env = Env::start().await;
    let bob = login_ok(&env.c(), "bob", PW, Some("d")).await;
    let r = env
        .verify(
            Some(&bob.access),
            &traefik_set("/api/x?q=1", "POST", "localhost"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-id"), Some("bob"));
    assert_eq!(r.header("x-session-id"), Some(bob.sid.as_str()));
    let admin = traefik_set("/admin/x", "GET", "localhost");
    assert_eq!(env.verify(Some(&bob.access), &admin).await.status, 403);
    assert_eq!(env.verify(None, &admin).await.status, 401);
    let ro = traefik_set("/ro/x", "DELETE", "localhost");
    assert_eq!(env.verify(Some(&bob.access), &ro).await.status, 405);
    // The token cookie, as a browser behind Traefik sends it.
    let cookie = format!("{ACCESS_COOKIE}={}", bob.access);
    let mut h = traefik_set("/api/x", "GET", "localhost");
    h.push(("cookie", &cookie));
    assert_eq!(env.verify(None, &h).await.status, 200);
    call(
        &env.c(),
        "POST",
        "/auth/logout",
        None,
        Some(&bob.access),
        &[],
    )
    .await;
    let api = traefik_set("/api/x", "GET", "localhost");
    assert_eq!(env.verify(Some(&bob.access), &api).await.status, 401);
}

// ---------------------------------------------------------------------------------------------
// The README's examples, run for real: a client talks to the proxy, the proxy asks the gateway
// and forwards to the recording backend.

/// What every forward-auth proxy example must get right, as a client sees it.
async fn the_example_holds(env: &Env, proxy: &Proxy) {
    let name = proxy.name;
    let bob = login_ok(&env.c(), "bob", PW, Some(name)).await;
    let bearer = format!("Bearer {}", bob.access);
    let auth = [("Authorization", bearer.as_str())];

    // No token: 401, and nothing reached the backend.
    let before = env.up.count();
    assert_eq!(proxy.get("/api/x", "localhost", &[]).await, 401, "{name}");
    assert_eq!(env.up.count(), before, "{name}");

    // A token: 200, the identity at the backend, the token not.
    assert_eq!(proxy.get("/api/x", "localhost", &auth).await, 200, "{name}");
    let seen = env.up.last();
    assert_eq!(seen.one("x-user-id").as_deref(), Some("bob"), "{name}");
    assert_eq!(seen.one("x-session-id").as_deref(), Some(bob.sid.as_str()));
    // Bob has no roles: the gateway answers an empty X-User-Roles, which nginx drops and
    // Traefik passes on.
    let roles = seen.one("x-user-roles").unwrap_or_default();
    assert_eq!(roles, "", "{name}");
    assert_eq!(seen.one("authorization"), None, "{name}");

    // The token cookie works, and no cookie reaches the backend.
    let cookie = format!("{ACCESS_COOKIE}={}; theme=dark", bob.access);
    let r = proxy
        .get("/api/x", "localhost", &[("Cookie", &cookie)])
        .await;
    assert_eq!(r, 200, "{name}");
    assert_eq!(env.up.last().one("cookie"), None, "{name}");

    // A client's identity headers, in any spelling, never reach the backend.
    let spoof = [
        ("Authorization", bearer.as_str()),
        ("X-User-Id", "root"),
        ("x-user-id", "root2"),
        ("X_User_Id", "root3"),
        ("X-User-Roles", "admin"),
        ("X_User_Roles", "admin"),
        ("X-Session-Id", "someone-elses"),
        ("X_Session_Id", "someone-elses"),
    ];
    assert_eq!(
        proxy.get("/api/x", "localhost", &spoof).await,
        200,
        "{name}"
    );
    let seen = env.up.last();
    assert_eq!(seen.all("x-user-id"), ["bob"], "{name}");
    assert_eq!(seen.all("x-session-id"), std::slice::from_ref(&bob.sid));
    assert_eq!(seen.one("x-user-roles").unwrap_or_default(), "", "{name}");
    assert_eq!(seen.one("authorization"), None, "{name}");
    let names = seen.names();
    assert!(!names.iter().any(|n| n.contains('_')), "{name}: {names:?}");
    // On a public route too: no identity at all.
    assert_eq!(proxy.get("/public/x", "localhost", &spoof[1..]).await, 200);
    let seen = env.up.last();
    assert!(seen.all("x-user-id").is_empty(), "{name}");
    assert!(seen.all("x-session-id").is_empty(), "{name}");
    assert!(!seen.names().iter().any(|n| n.contains('_')), "{name}");

    // The bypass of issue 9: a client's X-Forwarded-Uri naming a public route.
    let before = env.up.count();
    let forged = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-Uri", "/public/"),
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "localhost"),
    ];
    assert_eq!(
        proxy.get("/admin/x", "localhost", &forged).await,
        403,
        "{name}"
    );
    assert_eq!(proxy.get("/admin/x", "localhost", &forged[1..]).await, 401);
    // Nor can a client name the original request in nginx's headers.
    let own = [
        ("Authorization", bearer.as_str()),
        ("X-Original-URI", "/public/"),
        ("X-Original-Method", "GET"),
        ("X-Original-Host", "other.test"),
    ];
    assert_eq!(
        proxy.get("/admin/x", "localhost", &own).await,
        403,
        "{name}"
    );
    assert_eq!(
        env.up.count(),
        before,
        "{name}: a forged request reached the backend"
    );
    // A dot segment: /verify must never authorise the normalised /public/x while the backend
    // is handed /admin/../public/x (a router that matches before it resolves would serve
    // /admin/). nginx forwards the target as sent, so /verify refuses it; Traefik cleans the
    // path itself and then asks about, and forwards, the clean one.
    for path in [
        "/admin/%2e%2e/public/x",
        "/admin/../public/x",
        "/admin/.%2E/public/x",
    ] {
        let before = env.up.count();
        let status = proxy.get(path, "localhost", &[]).await;
        if status == 200 {
            assert_eq!(env.up.count(), before + 1, "{name}: {path}");
            assert_eq!(env.up.last().target, "/public/x", "{name}: {path}");
        } else {
            assert_eq!(env.up.count(), before, "{name}: {path}");
        }
    }
    let before = env.up.count();
    // The original host picks host routes.
    assert_eq!(proxy.get("/internal/x", "internal.test", &auth).await, 403);
    assert_eq!(
        env.up.count(),
        before,
        "{name}: nothing refused reached the backend"
    );
    assert_eq!(proxy.get("/internal/x", "other.test", &[]).await, 200);

    // After logout: 401.
    let r = call(
        &env.c(),
        "POST",
        "/auth/logout",
        None,
        Some(&bob.access),
        &[],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(proxy.get("/api/x", "localhost", &auth).await, 401, "{name}");
}

#[tokio::test]
async fn the_readme_nginx_example_in_front_of_the_gateway() {
    let env = Env::start().await;
    let nginx = Proxy::nginx(env.gw.https, env.up.addr, &env.gw.cert()).await;
    the_example_holds(&env, &nginx).await;
}

#[tokio::test]
async fn the_readme_traefik_example_in_front_of_the_gateway() {
    let env = Env::start().await;
    let traefik = Proxy::traefik(env.gw.https, env.up.addr, &env.gw.cert()).await;
    the_example_holds(&env, &traefik).await;
}

/// bench/nginx-auth-request.conf.example is the README block in a whole file.
#[test]
fn the_bench_file_holds_the_readme_block() {
    let bench = include_str!("../bench/nginx-auth-request.conf.example");
    let lines: Vec<&str> = bench.lines().map(str::trim).collect();
    let block: Vec<String> = proxies::readme_block("nginx")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let found = lines
        .windows(block.len())
        .any(|w| w.iter().zip(&block).all(|(a, b)| a == b));
    assert!(
        found,
        "bench/nginx-auth-request.conf.example differs from README's block"
    );
}
