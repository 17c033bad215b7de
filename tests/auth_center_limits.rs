//! docs/contract.md, "The auth center", the auth center's first rules, over real TLS against a real
//! `redis-server` (and the memory store where it applies): the login limit counted before the
//! password check, generated user ids, case- and width-blind usernames, JSON-only bodies
//! (415) and the Origin check for cookie-authenticated calls (403).

mod support;

use std::process::{Command, Stdio};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use support::auth::{self, add_user, call, login, login_ok, Pair, ACCESS_COOKIE, REFRESH_COOKIE};
use support::client::{Client, Proto, Resp, BOTH};
use support::gateway::{redis_session, TestGateway, MEMORY_SESSION};
use support::redis::RedisServer;
use support::upstream::Upstream;

const PW: &str = "correct horse battery";
const LIMIT: usize = gateway::auth_center::USERNAME_LIMIT as usize;

/// A gateway on Redis (with `bob` written as `gateway user add` does) or on memory (with
/// `bob` registered).
struct Env {
    gw: TestGateway,
    up: Upstream,
    redis: Option<RedisServer>,
}

impl Env {
    async fn redis(auth_extra: &str) -> Env {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let gw = auth::start(&redis_session(&redis.url()), auth_extra, &up).await;
        add_user(&redis, "bob", PW, &[]);
        Env {
            gw,
            up,
            redis: Some(redis),
        }
    }

    async fn memory() -> Env {
        let up = Upstream::start().await;
        let gw = auth::start(MEMORY_SESSION, "registration = true", &up).await;
        let r = register(&gw.client(Proto::H1), "bob").await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        Env {
            gw,
            up,
            redis: None,
        }
    }

    fn c(&self, proto: Proto) -> Client {
        self.gw.client(proto)
    }

    fn redis_get(&self, key: &str) -> Option<String> {
        let redis = self.redis.as_ref()?;
        redis::cmd("GET")
            .arg(key)
            .query(&mut redis.connection())
            .unwrap()
    }

    fn user_id_field(&self, name: &str) -> Option<String> {
        let redis = self.redis.as_ref()?;
        redis::cmd("HGET")
            .arg(format!("gw:user:{name}"))
            .arg("user_id")
            .query(&mut redis.connection())
            .unwrap()
    }

    /// The `X-User-Id` the upstream sees for a fresh login of `name`.
    async fn upstream_user_id(&self, name: &str) -> String {
        let c = self.c(Proto::H1);
        let p = login_ok(&c, name, PW, None).await;
        assert_eq!(c.get("/api/who", Some(&p.access)).await.status, 200);
        self.up.last().one("x-user-id").unwrap()
    }
}

async fn register(c: &Client, name: &str) -> Resp {
    let body = json!({ "username": name, "password": PW });
    call(c, "POST", "/auth/register", Some(body), None, &[]).await
}

/// A POST with the body and `Content-Type` as given (none when `None`).
async fn post(
    c: &Client,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = c.req("POST", path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    c.send(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
}

/// Sends `passwords` for `user` all at once, each on its own connection; the statuses.
async fn burst(c: &Client, user: &str, passwords: &[&str]) -> Vec<(u16, Option<String>)> {
    let tasks: Vec<_> = passwords
        .iter()
        .map(|pw| {
            let (c, user, pw) = (c.clone(), user.to_owned(), pw.to_string());
            tokio::spawn(async move {
                let r = login(&c, &user, &pw, None).await;
                (
                    r.status.as_u16(),
                    r.header("retry-after").map(str::to_owned),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn forty_wrong_guesses_get_the_limit_of_401s(env: Env) {
    let c = env.c(Proto::H2);
    let answers = burst(&c, "bob", &["wrong password"; 40]).await;
    let wrong = answers.iter().filter(|(s, _)| *s == 401).count();
    let locked: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(wrong, LIMIT, "{answers:?}");
    assert_eq!(wrong + locked.len(), 40, "only 401 or 429: {answers:?}");
    for (_, retry) in locked {
        let secs: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!(secs > 800 && secs <= 900, "{secs}");
    }
    // Only the admitted guesses were counted, so only they reached argon2.
    if env.redis.is_some() {
        let counted = env.redis_get("gw:login-fail:user:bob");
        assert_eq!(counted.as_deref(), Some("5"));
    }
    // Another spelling of the name is the same counter.
    assert_eq!(login(&c, "BOB", PW, None).await.status, 429);
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_no_more_401s_than_the_limit_on_redis() {
    forty_wrong_guesses_get_the_limit_of_401s(Env::redis("").await).await;
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_no_more_401s_than_the_limit_in_memory() {
    forty_wrong_guesses_get_the_limit_of_401s(Env::memory().await).await;
}

#[tokio::test]
async fn the_right_password_inside_a_burst_is_refused_once_the_limit_is_reached() {
    for env in [Env::redis("").await, Env::memory().await] {
        let c = env.c(Proto::H1);
        let mut passwords = vec!["wrong password"; 39];
        passwords.insert(20, PW);
        let answers = burst(&c, "bob", &passwords).await;
        let wrong = answers.iter().filter(|(s, _)| *s == 401).count();
        let passed = answers.iter().filter(|(s, _)| *s == 200).count();
        let locked = answers.iter().filter(|(s, _)| *s == 429).count();
        // The right password passes only if it was counted within the limit.
        assert!(wrong <= LIMIT, "{answers:?}");
        assert!(passed <= 1, "{answers:?}");
        assert_eq!(wrong + passed + locked, 40, "{answers:?}");
        // Had the right password been admitted, it took its attempt back: fill the window
        // (at most one more failure) so that it certainly holds five.
        for _ in 0..LIMIT {
            if login(&c, "bob", "wrong password", None).await.status == 429 {
                break;
            }
        }
        // Inside the locked window, the right password is 429, alone or inside a burst.
        let r = login(&c, "bob", PW, None).await;
        assert_eq!(r.status, 429, "{:?}", r.body);
        assert_eq!(r.error_code(), "too_many_attempts");
        assert!(r.header("retry-after").is_some());
        let mut passwords = vec!["wrong password"; 9];
        passwords.insert(4, PW);
        let answers = burst(&c, "bob", &passwords).await;
        assert!(answers.iter().all(|(s, _)| *s == 429), "{answers:?}");
    }
}

#[tokio::test]
async fn a_success_takes_back_only_its_own_attempt() {
    let env = Env::redis("").await;
    let c = env.c(Proto::H1);
    for _ in 0..LIMIT - 1 {
        assert_eq!(login(&c, "bob", "wrong password", None).await.status, 401);
    }
    login_ok(&c, "bob", PW, None).await;
    // The four failures still count: one more wrong password, then locked.
    assert_eq!(login(&c, "bob", "wrong password", None).await.status, 401);
    assert_eq!(login(&c, "bob", PW, None).await.status, 429);
}

#[tokio::test]
async fn registered_users_get_a_generated_user_id() {
    let env = Env::redis("registration = true").await;
    let c = env.c(Proto::H2);
    let r = register(&c, "payments-svc").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.json()["user_id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["username"], "payments-svc");
    assert_ne!(id, "payments-svc");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(env.user_id_field("payments-svc").as_deref(), Some(&*id));
    let seen = env.upstream_user_id("payments-svc").await;
    assert_eq!(seen, id);
    assert_ne!(seen, "payments-svc");
    // Another registration gets another id.
    let r = register(&c, "payments-svc2").await;
    assert_ne!(r.json()["user_id"].as_str().unwrap(), id);
}

#[tokio::test]
async fn usernames_are_one_whatever_their_case_or_width() {
    let redis = RedisServer::start();
    for session in [redis_session(&redis.url()), MEMORY_SESSION.to_owned()] {
        let up = Upstream::start().await;
        let gw = auth::start(&session, "registration = true", &up).await;
        let env = Env {
            gw,
            up,
            redis: None,
        };
        let c = env.c(Proto::H1);
        let r = register(&c, "bob").await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id = r.json()["user_id"].as_str().unwrap().to_owned();
        for same in [
            "BOB",
            "Bob",
            "\u{FF42}\u{FF4F}\u{FF42}",
            "\u{FF22}\u{FF2F}\u{FF22}",
        ] {
            let r = register(&c, same).await;
            assert_eq!(r.status, 409, "{same}: {:?}", r.body);
            assert_eq!(r.error_code(), "username_taken");
        }
        // Login by any spelling is the same user.
        for same in ["Bob", "\u{FF22}\u{FF4F}\u{FF42}"] {
            let p = login_ok(&c, same, PW, None).await;
            assert_eq!(c.get("/api/who", Some(&p.access)).await.status, 200);
            assert_eq!(env.up.last().one("x-user-id"), Some(id.clone()));
        }
        // Creation is atomic: of ten racing spellings of a new name, one wins.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let c = c.clone();
                let name = if i % 2 == 0 { "CAROL" } else { "carol" };
                tokio::spawn(async move { register(&c, name).await.status.as_u16() })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                201 => created += 1,
                409 => {}
                other => panic!("{other}"),
            }
        }
        assert_eq!(created, 1);
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gw:user:*")
        .query(&mut redis.connection())
        .unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["gw:user:bob", "gw:user:carol"]);
}

#[tokio::test]
async fn gateway_user_add_generates_the_id_and_folds_the_name() {
    let env = Env::redis("").await;
    let add = |name: &str, replace: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(["user", "add", "--config"])
            .arg(env.gw.config_path())
            .args([name, "--role", "ops", "--password-stdin"]);
        if replace {
            cmd.arg("--replace");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PW}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = add("Payments-Svc", false);
    assert_eq!(code, Some(0), "{err}");
    let id = env.user_id_field("payments-svc").unwrap();
    assert_ne!(id, "payments-svc");
    assert!(err.contains(&id), "{err}");
    assert_eq!(env.upstream_user_id("PAYMENTS-SVC").await, id);
    let (code, err) = add("PAYMENTS-svc", false);
    assert_eq!(code, Some(1), "{err}");
    // --replace keeps the id.
    let (code, err) = add("payments-svc", true);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(env.user_id_field("payments-svc"), Some(id));
}

#[tokio::test]
async fn bodies_that_are_not_declared_json_are_415() {
    let env = Env::redis("registration = true").await;
    for proto in BOTH {
        let c = env.c(proto);
        let login_body = json!({ "username": "bob", "password": PW }).to_string();
        let reg_body = json!({ "username": "mallory", "password": PW }).to_string();
        let refresh_body = json!({ "refresh_token": "x".repeat(43) }).to_string();
        for ct in [
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=b"),
            None,
        ] {
            for (path, body) in [
                ("/auth/login", &login_body),
                ("/auth/register", &reg_body),
                ("/auth/refresh", &refresh_body),
            ] {
                let r = post(&c, path, ct, body, &[]).await;
                assert_eq!(r.status, 415, "{proto:?} {path} {ct:?}: {:?}", r.body);
                assert_eq!(r.error_code(), "unsupported_media_type");
            }
        }
        // The right credentials in a text/plain body log no one in (login CSRF).
        let counted = env.redis_get("gw:login-fail:user:bob");
        assert!(
            matches!(counted.as_deref(), None | Some("0")),
            "{counted:?}"
        );
        // JSON in any case, with parameters: accepted.
        let r = post(
            &c,
            "/auth/login",
            Some("Application/JSON; charset=utf-8"),
            &login_body,
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let p = Pair::from(&r);
        // Empty bodies: a cookie-only refresh and a logout need no Content-Type, but a
        // form or text/plain one is still refused. The browser also sends its device cookie.
        let device = r.json()["device_id"].as_str().unwrap().to_owned();
        let cookie = format!(
            "{REFRESH_COOKIE}={}; {}",
            p.refresh,
            auth::device_cookie(&device)
        );
        let r = post(
            &c,
            "/auth/refresh",
            Some("text/plain"),
            "",
            &[("cookie", &cookie)],
        )
        .await;
        assert_eq!(r.status, 415);
        let r = post(&c, "/auth/refresh", None, "", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let p = Pair::from(&r);
        let bearer = format!("Bearer {}", p.access);
        let r = post(
            &c,
            "/auth/logout",
            Some("application/x-www-form-urlencoded"),
            "",
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status, 415);
        let r = post(&c, "/auth/logout", None, "", &[("authorization", &bearer)]).await;
        assert_eq!(r.status, 204);
        // An empty login without a Content-Type is no login either.
        assert_eq!(post(&c, "/auth/login", None, "", &[]).await.status, 415);
    }
}

#[tokio::test]
async fn cookie_calls_from_another_origin_are_403() {
    let env = Env::redis("").await;
    for proto in BOTH {
        let c = env.c(proto);
        let p = login_ok(&c, "bob", PW, Some("laptop")).await;
        let access = format!("{ACCESS_COOKIE}={}", p.access);
        let refresh = format!(
            "{REFRESH_COOKIE}={}; {}",
            p.refresh,
            auth::device_cookie("laptop")
        );
        let sid_path = format!("/auth/sessions/{}", p.sid);
        let cookie_calls: [(&str, &str, &str); 5] = [
            ("POST", "/auth/refresh", &refresh),
            ("POST", "/auth/logout", &access),
            ("GET", "/auth/sessions", &access),
            ("DELETE", &sid_path, &access),
            ("DELETE", "/auth/sessions", &access),
        ];
        for origin in [
            "https://evil.example",
            "null",
            "http://localhost",
            "https://localhost:8443",
        ] {
            for (method, path, cookie) in cookie_calls {
                let h = [("cookie", cookie), ("origin", origin)];
                let r = call(&c, method, path, None, None, &h).await;
                assert_eq!(r.status, 403, "{proto:?} {method} {path} {origin}");
                assert_eq!(r.error_code(), "origin_mismatch");
            }
        }
        // Nothing happened: the session and its refresh token still work.
        assert_eq!(c.get("/api/x", Some(&p.access)).await.status, 200);
        // A bearer header is not Origin-checked.
        let r = call(
            &c,
            "GET",
            "/auth/sessions",
            None,
            Some(&p.access),
            &[("origin", "https://evil.example")],
        )
        .await;
        assert_eq!(r.status, 200);
        // The gateway's own origin (default port or not) passes.
        for origin in ["https://localhost", "https://LOCALHOST:443"] {
            let h = [("cookie", access.as_str()), ("origin", origin)];
            assert_eq!(
                call(&c, "GET", "/auth/sessions", None, None, &h)
                    .await
                    .status,
                200
            );
        }
        let h = [
            ("cookie", refresh.as_str()),
            ("origin", "https://localhost"),
        ];
        let r = call(&c, "POST", "/auth/refresh", None, None, &h).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let p2 = Pair::from(&r);
        let access2 = format!("{ACCESS_COOKIE}={}", p2.access);
        let h = [
            ("cookie", access2.as_str()),
            ("origin", "https://localhost"),
        ];
        assert_eq!(
            call(&c, "POST", "/auth/logout", None, None, &h)
                .await
                .status,
            204
        );
        // Bearer logout from a foreign origin: 204 too.
        let q = login_ok(&c, "bob", PW, None).await;
        let h = [("origin", "https://evil.example")];
        let r = call(&c, "POST", "/auth/logout", None, Some(&q.access), &h).await;
        assert_eq!(r.status, 204);
    }
}

/// A 409 says a name exists: registrations count on the address's login limit, so names
/// cannot be enumerated through `/register` faster than through `/login`.
#[tokio::test]
async fn taken_names_cannot_be_enumerated_through_registration() {
    let env = Env::redis("registration = true").await;
    let c = env.c(Proto::H1);
    assert_eq!(register(&c, "carol").await.status, 201);
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(register(&c, "carol").await.status);
    }
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(conflicts, 20, "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
}
