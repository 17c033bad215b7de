//! Forward-auth (`/auth/verify`, CONTRACT.md section 7): which headers name the original
//! request, and the README's proxy examples against a real gateway. The nginx example is taken
//! from README.md itself and run in a real nginx (installed by scripts/test.sh) between a
//! client and a recording backend; Traefik is not packaged for Debian, so its header set is
//! sent to `/auth/verify` directly.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::auth::{self, add_user, call, login_ok, ACCESS_COOKIE};
use support::client::{Client, Proto};
use support::gateway::{redis_session, route, TestGateway};
use support::redis::RedisServer;
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
// nginx, for real.

/// The nginx binary: scripts/test.sh installs it (Debian's `nginx` package) when missing.
fn nginx_binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/nginx/sbin",
    ]) {
        let p = Path::new(dir).join("nginx");
        if p.is_file() {
            return p;
        }
    }
    panic!("nginx not found: run scripts/test.sh (it installs nginx) or apt-get install nginx");
}

/// The one ```nginx block of README.md.
fn readme_nginx_block() -> String {
    let readme = include_str!("../README.md");
    let mut blocks = readme.split("```nginx\n").skip(1);
    let first = blocks.next().expect("README.md has an ```nginx block");
    assert!(blocks.next().is_none(), "README.md has one ```nginx block");
    first.split("```").next().unwrap().to_owned()
}

/// nginx on a free loopback port with the README block in its server, pointed at `gateway`
/// and `backend`. One process (`master_process off`), so killing it on drop leaves no worker.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(gateway: SocketAddr, backend: SocketAddr, gateway_cert: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let block = readme_nginx_block();
        for placeholder in ["127.0.0.1:8443", "127.0.0.1:9000", "/etc/nginx/gateway.crt"] {
            assert!(
                block.contains(placeholder),
                "README block lost {placeholder}"
            );
        }
        let block = block
            .replace("127.0.0.1:8443", &gateway.to_string())
            .replace("127.0.0.1:9000", &backend.to_string())
            .replace(
                "/etc/nginx/gateway.crt",
                &gateway_cert.display().to_string(),
            );
        let addr = free_port();
        let conf = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nmaster_process off;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  \
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; \
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n  server {{\n    listen {addr};\n\
             {block}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_binary())
            .args(["-p", &d, "-e", &format!("{d}/error.log"), "-c"])
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut n = Nginx { child, addr, dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return n;
            }
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", n.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nginx did not listen within 5 s:\n{}", n.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request through nginx; the status code.
    async fn get(&self, path: &str, host: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf).into_owned()
        })
        .await
        .expect("nginx answers within 10 s");
        answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}\n{}", self.log()))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn the_readme_nginx_example_in_front_of_the_gateway() {
    let env = Env::start().await;
    let nginx = Nginx::start(env.gw.https, env.up.addr, &env.gw.cert()).await;
    let bob = login_ok(&env.c(), "bob", PW, Some("d")).await;
    let bearer = format!("Bearer {}", bob.access);

    // No token: 401, and nothing reached the backend.
    assert_eq!(nginx.get("/api/x", "localhost", &[]).await, 401);
    assert_eq!(env.up.count(), 0);

    // A token: 200, the identity at the backend, the token not.
    assert_eq!(
        nginx
            .get("/api/x", "localhost", &[("Authorization", &bearer)])
            .await,
        200
    );
    let seen = env.up.last();
    assert_eq!(seen.one("x-user-id").as_deref(), Some("bob"));
    assert_eq!(seen.one("x-session-id").as_deref(), Some(bob.sid.as_str()));
    assert_eq!(seen.one("x-user-roles"), None, "bob has no roles");
    assert_eq!(seen.one("authorization"), None);

    // The token cookie works, and no cookie reaches the backend.
    let cookie = format!("{ACCESS_COOKIE}={}; theme=dark", bob.access);
    assert_eq!(
        nginx
            .get("/api/x", "localhost", &[("Cookie", &cookie)])
            .await,
        200
    );
    assert_eq!(env.up.last().one("cookie"), None);

    // A client's identity headers, in any spelling, never reach the backend.
    let spoof = [
        ("Authorization", bearer.as_str()),
        ("X-User-Id", "root"),
        ("x-user-id", "root2"),
        ("X_User_Id", "root3"),
        ("X-User-Roles", "admin"),
        ("X-Session-Id", "someone-elses"),
        ("X_Session_Id", "someone-elses"),
    ];
    assert_eq!(nginx.get("/api/x", "localhost", &spoof).await, 200);
    let seen = env.up.last();
    assert_eq!(seen.all("x-user-id"), ["bob"]);
    assert_eq!(seen.all("x-session-id"), std::slice::from_ref(&bob.sid));
    assert!(seen.all("x-user-roles").is_empty());
    assert_eq!(seen.one("authorization"), None);
    let names = seen.names();
    assert!(!names.iter().any(|n| n.contains('_')), "{names:?}");
    // On a public route too: no identity at all.
    assert_eq!(nginx.get("/public/x", "localhost", &spoof[1..]).await, 200);
    let seen = env.up.last();
    assert_eq!(seen.all("x-user-id"), Vec::<String>::new());
    assert_eq!(seen.all("x-session-id"), Vec::<String>::new());

    // The bypass of issue 9: a client's X-Forwarded-Uri naming a public route.
    let before = env.up.count();
    let forged = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-Uri", "/public/"),
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "localhost"),
    ];
    assert_eq!(nginx.get("/admin/x", "localhost", &forged).await, 403);
    assert_eq!(nginx.get("/admin/x", "localhost", &forged[1..]).await, 401);
    // Nor can a client name the original request in nginx's own headers.
    let own = [
        ("Authorization", bearer.as_str()),
        ("X-Original-URI", "/public/"),
        ("X-Original-Host", "other.test"),
    ];
    assert_eq!(nginx.get("/admin/x", "localhost", &own).await, 403);
    // The host picks host routes through nginx as well.
    let auth = [("Authorization", bearer.as_str())];
    assert_eq!(nginx.get("/internal/x", "internal.test", &auth).await, 403);
    assert_eq!(
        env.up.count(),
        before,
        "nothing refused reached the backend"
    );
    assert_eq!(nginx.get("/internal/x", "other.test", &[]).await, 200);

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
    assert_eq!(nginx.get("/api/x", "localhost", &auth).await, 401);
}

/// bench/nginx-auth-request.conf.example is the README block in a whole file.
#[test]
fn the_bench_file_holds_the_readme_block() {
    let bench = include_str!("../bench/nginx-auth-request.conf.example");
    let lines: Vec<&str> = bench.lines().map(str::trim).collect();
    let block: Vec<String> = readme_nginx_block()
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
