//! Helpers for the auth-center tests: a gateway with `[auth]` options of the test's choosing
//! (and `jwt.cookie = "__Host-gw_access"`), users written straight into Redis, and the
//! login/refresh/session calls as a client makes them.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use super::client::{Client, Resp};
use super::gateway::{route, TestGateway};
use super::redis::RedisServer;
use super::upstream::Upstream;

pub const ACCESS_COOKIE: &str = "__Host-gw_access";
pub const REFRESH_COOKIE: &str = "__Secure-gw_refresh";

/// The whole config: `auth_extra` goes into `[auth]`, `session` is a `[session]` table.
pub fn toml(session: &str, auth_extra: &str, routes: &str) -> String {
    format!(
        r#"
[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "gateway.crt"
key = "gateway.key"

[jwt]
algorithms = ["EdDSA"]
issuer = "gateway"
audience = "api"
cookie = "{ACCESS_COOKIE}"
keys = [{{ kid = "k1", public_key = "signing.pub.pem" }}]

[headers]
user_id = "X-User-Id"
roles = "X-User-Roles"
session_id = "X-Session-Id"

[auth]
path = "/auth"
signing_key = "signing.pem"
signing_kid = "k1"
{auth_extra}

[limits]
header_timeout = "5s"
shutdown_grace = "2s"

{session}
{routes}
"#
    )
}

/// Routes every auth test uses: `/api/` (any user), `/admin/` (role admin), `/ro/` (GET
/// only), `/public/`.
pub fn routes(up: &Upstream) -> String {
    let u = up.url();
    [
        route("/api/", &u, ""),
        route("/admin/", &u, "roles = [\"admin\"]"),
        route("/ro/", &u, "methods = [\"GET\"]"),
        route("/public/", &u, "auth = \"public\""),
    ]
    .concat()
}

pub async fn start(session: &str, auth_extra: &str, up: &Upstream) -> TestGateway {
    TestGateway::start_toml(&toml(session, auth_extra, &routes(up))).await
}

/// Writes `{P}user:{name}` as `gateway user add` does.
pub fn add_user(redis: &RedisServer, name: &str, password: &str, roles: &[&str]) {
    add_user_on(&mut redis.connection(), name, password, roles);
}

/// [`add_user`] over any connection (a cluster's, say).
pub fn add_user_on(
    con: &mut impl redis::ConnectionLike,
    name: &str,
    password: &str,
    roles: &[&str],
) {
    let hash = gateway::auth_center::users::hash_password(password.as_bytes()).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("gw:user:{name}"))
        .arg("user_id")
        .arg(name)
        .arg("password_hash")
        .arg(hash)
        .arg("roles")
        .arg(roles.join(","))
        .query(con)
        .unwrap();
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request with a JSON body (or none), optional bearer and extra headers.
pub async fn call(
    c: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = c.req(method, path);
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let bytes = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    c.send(b.body(Full::new(bytes)).unwrap()).await
}

pub async fn login(c: &Client, user: &str, password: &str, device: Option<&str>) -> Resp {
    let mut body = json!({ "username": user, "password": password });
    if let Some(d) = device {
        body["device_id"] = d.into();
    }
    call(c, "POST", "/auth/login", Some(body), None, &[]).await
}

/// Logs in and returns (access, refresh, session id); panics unless 200.
pub async fn login_ok(c: &Client, user: &str, password: &str, device: Option<&str>) -> Pair {
    let r = login(c, user, password, device).await;
    assert_eq!(r.status, 200, "login: {:?}", r.body);
    Pair::from(&r)
}

pub async fn refresh(c: &Client, token: &str, device: Option<&str>) -> Resp {
    let mut body = json!({ "refresh_token": token });
    if let Some(d) = device {
        body["device_id"] = d.into();
    }
    call(c, "POST", "/auth/refresh", Some(body), None, &[]).await
}

#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
    pub sid: String,
}

impl From<&Resp> for Pair {
    fn from(r: &Resp) -> Pair {
        let j = r.json();
        Pair {
            access: j["access_token"].as_str().unwrap().to_owned(),
            refresh: j["refresh_token"].as_str().unwrap().to_owned(),
            sid: j["session_id"].as_str().unwrap().to_owned(),
        }
    }
}

/// Every `Set-Cookie` value of an answer.
pub fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The device cookie the gateway sets at login, as a `name=value` pair for a `Cookie` header
/// (its value is the device id in base64url).
pub fn device_cookie(device_id: &str) -> String {
    use base64::Engine as _;
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(device_id);
    format!("__Host-gw_device={value}")
}
