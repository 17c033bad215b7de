//! Tests of the config loader: the shipped file, defaults, every validation rule (key and
//! `line:col`), several errors at once, serde and syntax errors, and file reading.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use jsonwebtoken::Algorithm;

use super::*;
use crate::config::{
    AuthMode, BindRefresh, KeyMaterial, SigningKey, StoreKind, TlsVersion, UpstreamProtocol,
};

/// The smallest valid file: every required key, nothing else.
pub(super) const MIN: &str = r#"[listen]
https = "127.0.0.1:8443"

[tls]
cert = "c.pem"
key = "k.pem"

[jwt]
algorithms = ["EdDSA"]
issuer = "gw"
audience = "api"
keys = [{ kid = "k1", public_key = "pub.pem" }]

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
"#;

const SOURCE: &str = "/etc/gw/gateway.toml";

fn load_env(src: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| OsString::from(v))
    };
    load_str_with_env(src, Path::new(SOURCE), &lookup)
}

#[track_caller]
fn ok(src: &str) -> Config {
    match load_env(
        src,
        &[
            ("GW_SECRET", "s3cret, thirty-two bytes or more, ok"),
            ("GW_EMPTY", ""),
        ],
    ) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

#[track_caller]
fn errors(src: &str) -> Vec<ConfigError> {
    match load_env(
        src,
        &[
            ("GW_SECRET", "s3cret, thirty-two bytes or more, ok"),
            ("GW_EMPTY", ""),
        ],
    ) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => e.0,
    }
}

/// 1-based line and column of `needle` in `src`, where it occurs once: of its first
/// character, or of the character after a `|` in it (`"workers = |-1"`).
#[track_caller]
fn pos(src: &str, needle: &str) -> (usize, usize) {
    let (before, after) = needle.split_once('|').unwrap_or(("", needle));
    let whole = format!("{before}{after}");
    assert_eq!(src.matches(&whole).count(), 1, "{whole:?} must occur once");
    let at = src.find(&whole).unwrap_or_default() + before.len();
    let line = src[..at].matches('\n').count() + 1;
    let col = src[..at]
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, col)
}

/// Exactly one error, at `needle`, under `key`, whose reason contains `reason`.
#[track_caller]
fn one(src: &str, needle: &str, key: &str, reason: &str) {
    let errs = errors(src);
    assert_eq!(
        errs.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors(errs.clone())
    );
    let e = &errs[0];
    assert_eq!(e.file, PathBuf::from(SOURCE));
    assert_eq!((e.line, e.col), pos(src, needle), "position of {e}");
    assert_eq!(e.key, key, "key of {e}");
    assert!(
        e.reason.contains(reason),
        "reason of {e} should contain {reason:?}"
    );
}

/// `MIN` with `old` replaced by `new` (once).
#[track_caller]
fn with(old: &str, new: &str) -> String {
    assert_eq!(
        MIN.matches(old).count(),
        1,
        "{old:?} must occur once in MIN"
    );
    MIN.replacen(old, new, 1)
}

/// `MIN` with `extra` lines added to the `[jwt]` table.
fn jwt_with(extra: &str) -> String {
    with(
        "audience = \"api\"\n",
        &format!("audience = \"api\"\n{extra}\n"),
    )
}

/// `MIN` with `extra` lines added to the route.
fn route_with(extra: &str) -> String {
    format!("{MIN}{extra}\n")
}

// ---------------------------------------------------------------- the shipped file

#[test]
fn shipped_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let c = match load(&path) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.listen.https.to_string(), "127.0.0.1:8443");
    assert_eq!(
        c.listen.http.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:8080")
    );
    assert_eq!(
        c.listen.admin.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9901")
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(c.tls.cert, dir.join("certs/gateway.crt"));
    assert!(c.tls.self_signed_if_missing);
    assert_eq!(c.jwt.algorithms, [Algorithm::EdDSA]);
    assert_eq!(c.jwt.cookie.as_deref(), Some("__Host-gw_access"));
    assert!(
        matches!(&c.jwt.keys[0].material, KeyMaterial::PublicKeyFile(p) if *p == dir.join("certs/signing.pub.pem"))
    );
    assert_eq!(c.session.store, StoreKind::Memory);
    assert_eq!(
        c.headers.session_id.as_ref().map(|h| h.as_str()),
        Some("x-session-id")
    );
    let auth = c.auth.expect("[auth] is in the shipped file");
    assert_eq!(auth.path, "/auth");
    assert!(
        matches!(&auth.signing_key, SigningKey::PrivateKeyFile(p) if *p == dir.join("certs/signing.pem"))
    );
    assert_eq!(auth.refresh_ttl, days(7));
    assert_eq!(
        c.demo.map(|d| d.echo.to_string()).as_deref(),
        Some("127.0.0.1:9000")
    );
    let paths: Vec<&str> = c.routes.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api", "/admin", "/public"]);
    assert_eq!(c.routes[1].roles, ["admin"]);
    assert_eq!(c.routes[1].auth, AuthMode::Required);
    assert_eq!(c.routes[2].auth, AuthMode::Public);
}

#[test]
fn embedded_default_resolves_against_the_current_directory() {
    let c = match load_str(EMBEDDED_DEFAULT, Path::new("<embedded>")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.source, PathBuf::from("<embedded>"));
    assert_eq!(c.tls.cert, PathBuf::from("certs/gateway.crt"));
}

#[test]
fn contract_example_loads() {
    let src = r#"
[listen]
https = "0.0.0.0:8443"
http  = "0.0.0.0:8080"
admin = "127.0.0.1:9901"

[runtime]
workers = 4

[tls]
cert = "/abs/gateway.crt"
key  = "certs/gateway.key"
min_version = "1.3"
hsts = "365d"

[jwt]
algorithms = ["EdDSA", "HS256"]
issuer = "gateway"
audience = "api"
leeway = "30s"
user_id_claim = "uid"
roles_claim = "groups"
session_claim = "session"
cookie = "__Host-gw_access"
keys = [{ kid = "k1", public_key = "certs/signing.pub.pem" }, { kid = "h1", secret_env = "GW_SECRET" }]
jwks_url = "https://idp.example/.well-known/jwks.json"
jwks_refresh = "10m"

[session]
store = "redis"
redis_url = "redis://redis.internal:6380/1"
key_prefix = "prod:"
timeout = "250ms"
max_concurrent = 64

[headers]
user_id = "X-Auth-User"
roles = "X-Auth-Roles"
session_id = "X-Auth-Session"

[auth]
path = "/auth/"
signing_key = "certs/signing.pem"
signing_kid = "k1"
access_ttl = "15m"
refresh_ttl = "7d"
refresh_max_uses = 500
bind_refresh = "ip"
registration = true
cookies = false

[limits]
header_timeout = "5s"
max_header_bytes = 16384
max_headers = 50
max_connections = 2000
h2_max_streams = 50
idle_timeout = "2m"
body_idle_timeout = "10s"
shutdown_grace = "0s"

[[route]]
path = "/api/"
host = "API.Example.com"
methods = ["GET", "POST", "GET"]
upstream = ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
protocol = "h2c"
auth = "optional"
roles = ["admin", "ops", "admin"]
strip_prefix = true
forward_token = true
timeout = "5s"
max_body = "512KiB"

[[route]]
path = "/api/"
upstream = "http://10.0.0.1:80"
max_body = 1024
"#;
    let c = ok(src);
    assert_eq!(c.runtime.workers, 4);
    assert_eq!(c.tls.cert, PathBuf::from("/abs/gateway.crt"));
    assert_eq!(c.tls.key, PathBuf::from("/etc/gw/certs/gateway.key"));
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    assert_eq!(c.tls.hsts, Some(days(365)));
    assert_eq!(c.jwt.algorithms, [Algorithm::EdDSA, Algorithm::HS256]);
    assert_eq!(
        (c.jwt.user_id_claim.as_str(), c.jwt.roles_claim.as_str()),
        ("uid", "groups")
    );
    assert!(matches!(&c.jwt.keys[1].material,
        KeyMaterial::Secret { env, value } if env == "GW_SECRET" && value == b"s3cret, thirty-two bytes or more, ok"));
    assert_eq!(
        c.jwt.jwks_url.as_ref().map(ToString::to_string).as_deref(),
        Some("https://idp.example/.well-known/jwks.json")
    );
    assert_eq!(c.jwt.jwks_refresh, Duration::from_secs(600));
    assert_eq!(c.session.timeout, Duration::from_millis(250));
    assert_eq!(c.session.max_concurrent, 64);
    assert_eq!(c.session.key_prefix, "prod:");
    assert_eq!(c.headers.user_id.as_str(), "x-auth-user");
    let auth = c
        .auth
        .as_ref()
        .map(|a| (a.path.as_str(), a.bind_refresh, a.registration, a.cookies));
    assert_eq!(auth, Some(("/auth", BindRefresh::Ip, true, false)));
    assert_eq!(c.limits.header_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.shutdown_grace, Duration::ZERO);
    assert_eq!(c.limits.h2_max_streams, 50);
    let r = &c.routes[0];
    assert_eq!(r.path, "/api");
    assert_eq!(r.host.as_deref(), Some("api.example.com"));
    assert_eq!(r.methods.as_deref(), Some(&[Method::GET, Method::POST][..]));
    assert_eq!(r.upstreams.len(), 2);
    assert_eq!(r.upstreams[1].as_str(), "127.0.0.1:9001");
    assert_eq!(r.protocol, UpstreamProtocol::H2c);
    assert_eq!(r.roles, ["admin", "ops"]);
    assert!(r.strip_prefix && r.forward_token);
    assert_eq!(r.max_body, 512 * 1024);
    // Same path on another host (here: any host) is a different route.
    assert_eq!(c.routes[1].max_body, 1024);
}

#[test]
fn defaults() {
    let c = ok(MIN);
    assert_eq!(c.source, PathBuf::from(SOURCE));
    assert_eq!(c.listen.http, None);
    assert_eq!(c.runtime.workers, 0);
    assert_eq!(c.tls.cert, PathBuf::from("/etc/gw/c.pem"));
    assert_eq!(c.tls.min_version, TlsVersion::V1_2);
    assert_eq!(c.tls.hsts, None);
    assert!(!c.tls.self_signed_if_missing);
    assert_eq!(c.jwt.leeway, Duration::from_secs(30));
    assert_eq!(
        (
            c.jwt.user_id_claim.as_str(),
            c.jwt.roles_claim.as_str(),
            c.jwt.session_claim.as_str()
        ),
        ("sub", "roles", "sid")
    );
    assert_eq!(c.jwt.cookie, None);
    assert_eq!(c.jwt.jwks_url, None);
    assert_eq!(c.jwt.jwks_refresh, Duration::from_secs(300));
    assert_eq!(c.session.store, StoreKind::Redis);
    assert_eq!(
        c.session.redis,
        crate::config::Redis::url("redis://127.0.0.1:6379/0")
    );
    assert_eq!(c.session.key_prefix, "gw:");
    assert_eq!(c.session.timeout, Duration::from_millis(500));
    assert_eq!(c.session.max_concurrent, 256);
    assert_eq!(c.headers.user_id.as_str(), "x-user-id");
    assert_eq!(c.headers.roles.as_str(), "x-user-roles");
    assert_eq!(c.headers.session_id, None);
    assert!(c.auth.is_none());
    assert!(c.demo.is_none());
    let l = &c.limits;
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    assert_eq!(
        (
            l.max_header_bytes,
            l.max_headers,
            l.max_connections,
            l.h2_max_streams
        ),
        (32768, 100, 10_000, 100)
    );
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.body_idle_timeout, Duration::from_secs(30));
    assert_eq!(l.shutdown_grace, Duration::from_secs(30));
    let r = &c.routes[0];
    assert_eq!(r.path, "/");
    assert_eq!((r.host.as_ref(), r.methods.as_ref()), (None, None));
    assert_eq!(r.upstreams[0].as_str(), "127.0.0.1:9000");
    assert_eq!(
        (r.protocol, r.auth),
        (UpstreamProtocol::Http1, AuthMode::Required)
    );
    assert!(r.roles.is_empty() && !r.strip_prefix && !r.forward_token);
    assert_eq!(r.timeout, Duration::from_secs(30));
    assert_eq!(r.max_body, 10 * 1024 * 1024);
}

#[test]
fn auth_defaults() {
    let c = ok(&format!(
        "{MIN}\n[auth]\npath = \"/login/\"\nsigning_key = \"priv.pem\"\n"
    ));
    let a = c.auth.expect("auth table present");
    assert_eq!(a.path, "/login");
    assert_eq!(a.signing_kid, "k1");
    assert_eq!(a.access_ttl, Duration::from_secs(900));
    assert_eq!(a.refresh_ttl, days(7));
    assert_eq!(a.refresh_max_uses, 500);
    assert_eq!(a.bind_refresh, BindRefresh::Device);
    assert_eq!(a.refresh_grace, Duration::ZERO);
    assert!(!a.registration && a.cookies);
}

#[test]
fn auth_durations_have_no_arbitrary_floor() {
    let key = "path = \"/auth\"\nsigning_key = \"p.pem\"\n";
    let a = ok(&auth(&format!(
        "{key}access_ttl = \"1s\"\nrefresh_ttl = \"3s\"\nrefresh_grace = \"500ms\""
    )))
    .auth
    .unwrap();
    assert_eq!(a.access_ttl, Duration::from_secs(1));
    assert_eq!(a.refresh_ttl, Duration::from_secs(3));
    assert_eq!(a.refresh_grace, Duration::from_millis(500));
    one(
        &auth(&format!("{key}refresh_ttl = \"0s\"")),
        "\"0s\"",
        "auth.refresh_ttl",
        "from 1s to 365d",
    );
    one(
        &auth(&format!("{key}access_ttl = \"0s\"")),
        "\"0s\"",
        "auth.access_ttl",
        "from 1s to 1d",
    );
    // Shorter than the default access_ttl (15m): refresh would end before its first token.
    one(
        &auth(&format!("{key}refresh_ttl = \"3s\"")),
        "\"3s\"",
        "auth.refresh_ttl",
        "at least as long",
    );
}

#[test]
fn auth_refresh_grace_is_short() {
    let key = "path = \"/auth\"\nsigning_key = \"p.pem\"\n";
    let a = ok(&auth(&format!("{key}refresh_grace = \"10s\"")))
        .auth
        .unwrap();
    assert_eq!(a.refresh_grace, Duration::from_secs(10));
    one(
        &auth(&format!("{key}refresh_grace = \"2m\"")),
        "\"2m\"",
        "auth.refresh_grace",
        "from 0s to 1m",
    );
    one(
        &auth(&format!("{key}access_ttl = \"5s\"\nrefresh_grace = \"5s\"")),
        "grace = |\"5s\"",
        "auth.refresh_grace",
        "shorter than auth.access_ttl",
    );
    one(
        &auth(&format!("{key}refresh_grace = \"soon\"")),
        "\"soon\"",
        "auth.refresh_grace",
        "a duration",
    );
    // Off is always allowed, whatever access_ttl is.
    ok(&auth(&format!(
        "{key}access_ttl = \"1s\"\nrefresh_grace = \"0s\""
    )));
}

// ---------------------------------------------------------------- messages

#[test]
fn message_format() {
    let src = with("\"http://127.0.0.1:9000\"", "\"ftp://x\"");
    let errs = errors(&src);
    assert_eq!(
        errs[0].to_string(),
        "/etc/gw/gateway.toml:16:12: route[0].upstream: expected \"http://host:port\", got \"ftp://x\""
    );
}

#[test]
fn several_errors_in_file_order() {
    let src = r#"[listen]
https = "nowhere"

[tls]
cert = "c.pem"
key = "k.pem"
min_version = "1.0"

[jwt]
algorithms = ["none", "RS256"]
issuer = "gw"
audience = "api"
keys = [{ kid = "k1", public_key = "pub.pem" }]
leeway = "forever"

[session]
timeout = "1m"

[[route]]
path = "api"
upstream = "http://127.0.0.1:9000"

[[route]]
path = "/b"
upstream = "https://127.0.0.1:9000"
bogus = 1
"#;
    let errs = errors(src);
    let got: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|e| (e.line, e.col, e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 9, "listen.https"),
            (7, 15, "tls.min_version"),
            (10, 15, "jwt.algorithms[0]"),
            (14, 10, "jwt.leeway"),
            (17, 11, "session.timeout"),
            (20, 8, "route[0].path"),
            // Reported too now that the unknown key beside it no longer hides it.
            (25, 12, "route[1].upstream"),
            (26, 1, "route[1].bogus"),
        ],
        "{}",
        ConfigErrors(errs.clone())
    );
}

// ---------------------------------------------------------------- serde and syntax errors

#[test]
fn unknown_top_level_key() {
    let src = format!("{MIN}\n[listener]\nhttps = \"x\"\n");
    one(
        &src,
        "listener",
        "listener",
        "unknown top-level table `listener`, expected one of `listen`",
    );
    let src = format!("verbose = true\n{MIN}");
    one(
        &src,
        "verbose",
        "verbose",
        "unknown top-level key `verbose`",
    );
}

#[test]
fn unknown_key_in_a_table() {
    let src = with(
        "https = \"127.0.0.1:8443\"\n",
        "https = \"127.0.0.1:8443\"\nhttp2 = \"x\"\n",
    );
    one(
        &src,
        "http2",
        "listen.http2",
        "unknown field `http2`, expected one of `https`, `http`, `admin`",
    );
}

#[test]
fn unknown_key_in_a_route_and_in_a_key() {
    one(
        &route_with("upstreams = []"),
        "upstreams",
        "route[0].upstreams",
        "unknown field `upstreams`",
    );
    let src = with(
        "public_key = \"pub.pem\" }",
        "public_key = \"pub.pem\", alg = \"x\" }",
    );
    one(&src, "alg =", "jwt.keys[0].alg", "unknown field `alg`");
}

/// `(line, col, key)` of every error, in the order reported.
fn places(src: &str) -> Vec<(usize, usize, String)> {
    errors(src)
        .into_iter()
        .map(|e| (e.line, e.col, e.key))
        .collect()
}

#[test]
fn an_unknown_key_does_not_hide_a_bad_value_beside_it() {
    // The issue's case: a typo'd key and a bad duration in one table, both reported.
    let src = format!("{MIN}\n[session]\ncolour = \"red\"\ntimeout = \"banana\"\n");
    let (colour, timeout) = (pos(&src, "colour"), pos(&src, "\"banana\""));
    assert_eq!(
        places(&src),
        vec![
            (colour.0, colour.1, "session.colour".to_owned()),
            (timeout.0, timeout.1, "session.timeout".to_owned()),
        ]
    );
    // Two unknown keys and a value of the wrong type, in a route and in a jwt key.
    let src = route_with("upstreams = []\nmethod = \"GET\"\nstrip_prefix = \"yes\"");
    let keys: Vec<String> = places(&src).into_iter().map(|p| p.2).collect();
    assert_eq!(
        keys,
        [
            "route[0].upstreams",
            "route[0].method",
            "route[0].strip_prefix"
        ]
    );
    let src = with(
        "public_key = \"pub.pem\" }",
        "public_key = \"pub.pem\", alg = \"x\", use = \"sig\" }",
    )
    .replace(
        "audience = \"api\"\n",
        "audience = \"api\"\nleeway = \"never\"\n",
    );
    let keys: Vec<String> = places(&src).into_iter().map(|p| p.2).collect();
    assert_eq!(keys, ["jwt.leeway", "jwt.keys[0].alg", "jwt.keys[0].use"]);
}

#[test]
fn thousands_of_unknown_keys_cost_a_bounded_number_of_rounds() {
    let junk: String = (0..5000).map(|i| format!("junk{i} = 1\n")).collect();
    let src = format!("{MIN}\n[session]\n{junk}");
    let errs = errors(&src);
    assert_eq!(errs.len(), 51, "50 listed and one line for the rest");
    assert!(errs
        .iter()
        .any(|e| e.reason.contains("more than 50 mistakes")));
}

#[test]
fn a_required_key_of_the_wrong_type_is_one_error() {
    // Taking `https` out to go on must not add "missing field `https`".
    let src = with("https = \"127.0.0.1:8443\"", "https = 8443\nhttp2 = true");
    let keys: Vec<String> = places(&src).into_iter().map(|p| p.2).collect();
    assert_eq!(keys, ["listen.https", "listen.http2"]);
}

#[test]
fn syntax_error() {
    let src = with("[tls]\n", "[tls\n");
    let errs = errors(&src);
    assert_eq!((errs[0].line, errs[0].col), (4, 5), "{}", errs[0]);
    assert!(errs[0].reason.starts_with("TOML syntax:"), "{}", errs[0]);

    let src = with("issuer = \"gw\"\n", "issuer = \"gw\"\nissuer = \"again\"\n");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!((errs[0].line, errs[0].col), pos(&src, "issuer = \"again\""));
    assert!(errs[0].reason.contains("duplicate key"), "{}", errs[0]);
}

#[test]
fn wrong_types() {
    one(
        &with("https = \"127.0.0.1:8443\"", "https = 8443"),
        "8443",
        "listen.https",
        "invalid type: integer `8443`, expected a string (write it in quotes: \"8443\")",
    );
    one(
        &with("key = \"k.pem\"", "key = \"k.pem\"\nmin_version = 1.3"),
        "1.3",
        "tls.min_version",
        "(write it in quotes: \"1.3\")",
    );
    one(
        &route_with("strip_prefix = \"yes\""),
        "\"yes\"",
        "route[0].strip_prefix",
        "expected a boolean",
    );
    one(
        &format!("{MIN}\n[runtime]\nworkers = \"4\"\n"),
        "\"4\"",
        "runtime.workers",
        "expected i64",
    );
    one(
        &with("[\"EdDSA\"]", "\"EdDSA\""),
        "\"EdDSA\"",
        "jwt.algorithms",
        "expected a sequence",
    );
    one(
        &with("upstream = \"http://127.0.0.1:9000\"", "upstream = 9000"),
        "9000",
        "route[0].upstream",
        "expected \"http://host:port\" or an array",
    );
    one(
        &jwt_with("keys2 = 1")
            .replace(
                "keys = [{ kid = \"k1\", public_key = \"pub.pem\" }]",
                "keys = [\"k1\"]",
            )
            .replace("keys2 = 1\n", ""),
        "\"k1\"",
        "jwt.keys[0]",
        "expected a key table",
    );
    one(
        &format!(
            "listen = \"127.0.0.1:1\"\n{}",
            MIN.replacen("[listen]\nhttps = \"127.0.0.1:8443\"\n", "", 1)
        ),
        "\"127.0.0.1:1\"",
        "listen",
        "expected a table, got a string",
    );
}

#[test]
fn missing_tables_and_keys() {
    let src = MIN.replacen(
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n",
        "",
        1,
    );
    let errs = errors(&src);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].key.as_str()), (0, "route"));
    assert!(errs[0].reason.contains("at least one [[route]]"));
    assert_eq!(
        errs[0].to_string(),
        "/etc/gw/gateway.toml: route: missing: at least one [[route]] table is required"
    );

    let errs = errors("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n");
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["listen", "tls", "jwt"]);

    one(
        &with("issuer = \"gw\"\n", ""),
        "[jwt]",
        "jwt",
        "missing field `issuer`",
    );
    one(
        &route_with("").replacen("path = \"/\"\n", "", 1),
        "[[route]]",
        "route[0]",
        "missing field `path`",
    );
    one(
        &format!("{MIN}[route]\npath = \"/x\"\n").replacen(
            "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n",
            "",
            1,
        ),
        "[route]",
        "route",
        "expected [[route]] tables",
    );
}

// ---------------------------------------------------------------- [listen] [runtime] [tls]

#[test]
fn listen_rules() {
    one(
        &with("\"127.0.0.1:8443\"", "\"localhost:8443\""),
        "\"localhost:8443\"",
        "listen.https",
        "\"localhost\" is not resolved",
    );
    let src = with(
        "https = \"127.0.0.1:8443\"\n",
        "https = \"127.0.0.1:8443\"\nhttp = \"127.0.0.1:8443\"\nadmin = \"[::1]:9901\"\n",
    );
    one(
        &src,
        "http = |",
        "listen.http",
        "127.0.0.1:8443 is already used by listen.https",
    );
    let src = format!("{MIN}\n[demo]\necho = \"127.0.0.1:8443\"\n");
    one(
        &src,
        "echo = |\"127.0.0.1:8443\"",
        "demo.echo",
        "already used by listen.https",
    );
}

#[test]
fn runtime_and_tls_rules() {
    one(
        &format!("{MIN}\n[runtime]\nworkers = -1\n"),
        "-1",
        "runtime.workers",
        "expected an integer from 0 to 1024, got -1",
    );
    one(
        &with("key = \"k.pem\"", "key = \"k.pem\"\nmin_version = \"1.1\""),
        "\"1.1\"",
        "tls.min_version",
        "expected one of \"1.2\", \"1.3\", got \"1.1\"",
    );
    one(
        &with("key = \"k.pem\"", "key = \"k.pem\"\nhsts = \"1y\""),
        "\"1y\"",
        "tls.hsts",
        "expected a duration",
    );
    one(
        &with("cert = \"c.pem\"", "cert = \"\""),
        "\"\"",
        "tls.cert",
        "expected a file path, got an empty string",
    );
    one(
        &with("key = \"k.pem\"", "key = \"c.pem\""),
        "\"c.pem\"\n\n",
        "tls.key",
        "different file",
    );
}

// ---------------------------------------------------------------- [jwt]

#[test]
fn none_is_never_accepted() {
    for none in ["none", "None", "NONE", "nOnE"] {
        let src = with("[\"EdDSA\"]", &format!("[\"EdDSA\", \"{none}\"]"));
        one(
            &src,
            &format!("\"{none}\""),
            "jwt.algorithms[1]",
            "never accepted",
        );
    }
}

#[test]
fn algorithm_names() {
    one(
        &with("[\"EdDSA\"]", "[\"eddsa\"]"),
        "\"eddsa\"",
        "jwt.algorithms[0]",
        "case-sensitive: \"EdDSA\"",
    );
    one(
        &with("[\"EdDSA\"]", "[\"ES512\"]"),
        "\"ES512\"",
        "jwt.algorithms[0]",
        "expected one of HS256",
    );
    one(
        &with("[\"EdDSA\"]", "[]"),
        "[]",
        "jwt.algorithms",
        "at least one algorithm",
    );
    let c = ok(&with(
        "[\"EdDSA\"]",
        "[\"RS256\", \"PS512\", \"ES384\", \"RS256\"]",
    ));
    assert_eq!(
        c.jwt.algorithms,
        [Algorithm::RS256, Algorithm::PS512, Algorithm::ES384]
    );
}

#[test]
fn algorithms_and_keys_agree() {
    // HS256 without a secret key.
    one(
        &with("[\"EdDSA\"]", "[\"EdDSA\", \"HS256\"]"),
        "\"HS256\"",
        "jwt.algorithms[1]",
        "add a key with `secret_env`",
    );
    // An asymmetric algorithm with only a secret.
    let src = with("[\"EdDSA\"]", "[\"HS512\", \"RS256\"]")
        .replace("public_key = \"pub.pem\"", "secret_env = \"GW_SECRET\"");
    one(
        &src,
        "\"RS256\"",
        "jwt.algorithms[1]",
        "add a key with `public_key`",
    );
    // ...which a JWKS satisfies.
    ok(&src.replace(
        "audience = \"api\"",
        "audience = \"api\"\njwks_url = \"https://idp/jwks\"",
    ));
    // A key no listed algorithm uses.
    let src = with(
        "public_key = \"pub.pem\" }",
        "public_key = \"pub.pem\" }, { kid = \"h\", secret_env = \"GW_SECRET\" }",
    );
    one(
        &src,
        "\"GW_SECRET\"",
        "jwt.keys[1].secret_env",
        "lists none of them",
    );
    let src = with("[\"EdDSA\"]", "[\"HS256\"]");
    let errs = errors(&src);
    assert!(
        errs.iter().any(|e| e.key == "jwt.keys[0].public_key"),
        "{}",
        ConfigErrors(errs.clone())
    );
}

#[test]
fn key_rules() {
    let k = "{ kid = \"k1\", public_key = \"pub.pem\" }";
    one(
        &with(
            k,
            "{ kid = \"k1\", public_key = \"p\", secret_env = \"GW_SECRET\" }",
        ),
        "\"GW_SECRET\"",
        "jwt.keys[0].secret_env",
        "not both",
    );
    one(
        &with(k, "{ kid = \"k1\" }"),
        "{ kid",
        "jwt.keys[0]",
        "a key needs `public_key`",
    );
    one(
        &with(
            k,
            "{ kid = \"k1\", public_key = \"a\" }, { kid = \"k1\", public_key = \"b\" }",
        ),
        "\"k1\", public_key = \"b\"",
        "jwt.keys[1].kid",
        "already used by jwt.keys[0]",
    );
    one(
        &with(k, "{ kid = \"\", public_key = \"a\" }"),
        "\"\"",
        "jwt.keys[0].kid",
        "expected a key id",
    );
    let hs = |env: &str| {
        with("[\"EdDSA\"]", "[\"HS256\"]")
            .replace(k, &format!("{{ kid = \"h\", secret_env = \"{env}\" }}"))
    };
    one(
        &hs("GW_UNSET"),
        "\"GW_UNSET\"",
        "jwt.keys[0].secret_env",
        "GW_UNSET is not set",
    );
    one(
        &hs("GW_EMPTY"),
        "\"GW_EMPTY\"",
        "jwt.keys[0].secret_env",
        "GW_EMPTY is empty",
    );
    one(
        &hs("A=B"),
        "\"A=B\"",
        "jwt.keys[0].secret_env",
        "name of an environment variable",
    );
    one(
        &hs(""),
        "\"\"",
        "jwt.keys[0].secret_env",
        "name of an environment variable",
    );
    let c = ok(&hs("GW_SECRET"));
    assert!(
        matches!(&c.jwt.keys[0].material, KeyMaterial::Secret { value, .. } if value == b"s3cret, thirty-two bytes or more, ok")
    );
}

#[test]
fn secret_bytes_are_taken_as_they_are() {
    let src = with("[\"EdDSA\"]", "[\"HS256\"]")
        .replace("public_key = \"pub.pem\"", "secret_env = \"GW_B64\"");
    let c = load_env(&src, &[("GW_B64", " c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")])
        .map_err(|e| e.to_string());
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&c.jwt.keys[0].material, KeyMaterial::Secret { value, .. } if value == b" c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
    );
}

#[test]
fn verification_key_required() {
    let src = with("keys = [{ kid = \"k1\", public_key = \"pub.pem\" }]\n", "");
    let errs = errors(&src);
    assert!(
        errs.iter().any(|e| e.key == "jwt"
            && e.reason.contains("no verification key")
            && (e.line, e.col) == pos(&src, "[jwt]")),
        "{}",
        ConfigErrors(errs.clone())
    );
}

#[test]
fn jwks_url_rules() {
    let jwks = |url: &str| jwt_with(&format!("jwks_url = \"{url}\""));
    for good in [
        "https://idp.example/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://127.1.2.3/j",
        "http://localhost:9000/jwks",
        "http://[::1]:80/jwks",
    ] {
        let c = ok(&jwks(good));
        assert!(c.jwt.jwks_url.is_some(), "{good}");
    }
    one(
        &jwks("http://idp.example/jwks"),
        "\"http://idp",
        "jwt.jwks_url",
        "only for loopback hosts",
    );
    one(
        &jwks("http://10.0.0.1/jwks"),
        "\"http://10",
        "jwt.jwks_url",
        "only for loopback hosts",
    );
    one(
        &jwks("ftp://idp/jwks"),
        "\"ftp",
        "jwt.jwks_url",
        "expected an https:// URL",
    );
    one(&jwks("/jwks"), "\"/jwks", "jwt.jwks_url", "expected a URL");
    one(
        &jwks("https://u:p@idp/jwks"),
        "\"https",
        "jwt.jwks_url",
        "credentials",
    );
    one(
        &jwt_with("jwks_refresh = \"1s\""),
        "\"1s\"",
        "jwt.jwks_refresh",
        "from 10s to 1d",
    );
}

#[test]
fn jwt_scalars() {
    one(
        &with("issuer = \"gw\"", "issuer = \"\""),
        "\"\"",
        "jwt.issuer",
        "expected the issuer",
    );
    one(
        &jwt_with("cookie = \"gw access\""),
        "\"gw access\"",
        "jwt.cookie",
        "expected a cookie name",
    );
    one(
        &jwt_with("leeway = \"1h\""),
        "\"1h\"",
        "jwt.leeway",
        "from 0s to 5m",
    );
    one(
        &jwt_with("roles_claim = \" \""),
        "\" \"",
        "jwt.roles_claim",
        "a claim name",
    );
}

// ---------------------------------------------------------------- [session] [headers]

#[test]
fn session_rules() {
    let s = |body: &str| format!("{MIN}\n[session]\n{body}\n");
    one(
        &s("store = \"mysql\""),
        "\"mysql\"",
        "session.store",
        "expected one of \"redis\", \"memory\", got \"mysql\"",
    );
    one(
        &s("redis_url = \"http://r:6379\""),
        "\"http://r",
        "session.redis_url",
        "redis://",
    );
    one(
        &s("redis_url = \"rediss://r:6380#insecure\""),
        "\"rediss://r",
        "session.redis_url",
        "#insecure turns certificate checks off",
    );
    one(
        &s("timeout = \"6s\""),
        "\"6s\"",
        "session.timeout",
        "from 1ms to 5s",
    );
    one(
        &s("timeout = \"0ms\""),
        "\"0ms\"",
        "session.timeout",
        "from 1ms to 5s",
    );
    one(
        &s("max_concurrent = 0"),
        "max_concurrent = |0",
        "session.max_concurrent",
        "from 1 to 65536",
    );
    one(
        &s("key_prefix = \"a b\""),
        "\"a b\"",
        "session.key_prefix",
        "without spaces",
    );
    let c = ok(&s(
        "store = \"memory\"\nredis_url = \"unix:///run/redis.sock\"\nkey_prefix = \"\"",
    ));
    assert_eq!(c.session.store, StoreKind::Memory);
    assert_eq!(c.session.key_prefix, "");
}

#[test]
fn redis_deployments() {
    use crate::config::{Redis, RedisNodes, RedisPassword};
    let s = |body: &str| format!("{MIN}\n[session]\n{body}\n");
    // TLS with a private CA and a password from the environment.
    let c = load_env(
        &s("redis_url = \"rediss://r:6380/0\"\nredis_password_env = \"RP\"\nredis_ca = \"ca.pem\""),
        &[("RP", "s3cret")],
    )
    .unwrap();
    assert_eq!(
        c.session.redis,
        Redis {
            nodes: RedisNodes::Url("rediss://r:6380/0".into()),
            password: Some(RedisPassword("s3cret".into())),
            ca: Some(Path::new(SOURCE).parent().unwrap().join("ca.pem")),
        }
    );
    assert!(!format!("{:?}", c.session.redis).contains("s3cret"));
    let c = ok(&s("redis_url = \"rediss://app:hunter2@r:6380/0\""));
    let shown = format!("{:?}", c.session.redis);
    assert!(
        !shown.contains("hunter2") && shown.contains("rediss://<userinfo>@r:6380/0"),
        "{shown}"
    );
    // Sentinel.
    let c = ok(&s(
        "redis_sentinel = { master = \"mymaster\", nodes = [\"redis://a:26379\", \"redis://b:26379\"] }",
    ));
    assert_eq!(
        c.session.redis.nodes,
        RedisNodes::Sentinel {
            master: "mymaster".into(),
            nodes: vec!["redis://a:26379".into(), "redis://b:26379".into()],
        }
    );
    one(
        &s("redis_url = \"redis://a:6379\"\nredis_sentinel = { master = \"m\", nodes = [\"redis://b:26379\"] }"),
        "redis_sentinel = |{",
        "session.redis_sentinel",
        "set exactly one of redis_url, redis_sentinel and redis_cluster",
    );
    one(
        &s("redis_sentinel = { master = \"m\", nodes = [] }"),
        "nodes = |[]",
        "session.redis_sentinel.nodes",
        "at least one node URL",
    );
    one(
        &s("redis_sentinel = { master = \"m\", nodes = [\"redis://a:26379\", \"rediss://b:26379\"] }"),
        "nodes = |[",
        "session.redis_sentinel.nodes",
        "mixes redis:// and rediss://",
    );
    one(
        &s("redis_sentinel = { master = \"m\", nodes = [\"unix:///s\"] }"),
        "\"unix",
        "session.redis_sentinel.nodes[0]",
        "redis:// or rediss://",
    );
    one(
        &s("redis_sentinel = { master = \"\", nodes = [\"redis://a:26379\"] }"),
        "master = |\"\"",
        "session.redis_sentinel.master",
        "the master's name",
    );
    let c = ok(&s(
        "redis_cluster = [\"rediss://a:7000\", \"rediss://b:7000\"]",
    ));
    assert_eq!(
        c.session.redis.nodes,
        RedisNodes::Cluster(vec!["rediss://a:7000".into(), "rediss://b:7000".into()])
    );
    assert!(c.session.redis.tls());
    one(
        &s("redis_cluster = [\"redis://a:7000\"]\nkey_prefix = \"gw{\""),
        "\"gw{",
        "session.key_prefix",
        "must not contain '{' or '}'",
    );
    one(
        &s("redis_cluster = []"),
        "redis_cluster = |[]",
        "session.redis_cluster",
        "at least one node URL",
    );
    one(
        &s("redis_url = \"redis://r:6379\"\nredis_ca = \"ca.pem\""),
        "\"ca.pem",
        "session.redis_ca",
        "use rediss://",
    );
    one(
        &s("redis_password_env = \"NOT_SET_ANYWHERE_42\""),
        "\"NOT_SET",
        "session.redis_password_env",
        "is not set",
    );
}

#[test]
fn header_rules() {
    let h = |body: &str| format!("{MIN}\n[headers]\n{body}\n");
    one(
        &h("user_id = \"X User\""),
        "\"X User\"",
        "headers.user_id",
        "expected a header name",
    );
    for reserved in [
        "Authorization",
        "host",
        "Cookie",
        "Connection",
        "Content-Length",
        "Transfer-Encoding",
        "X-Forwarded-For",
        "Sec-Fetch-Site",
    ] {
        one(
            &h(&format!("roles = \"{reserved}\"")),
            &format!("\"{reserved}\""),
            "headers.roles",
            "standard header",
        );
    }
    one(
        &h("user_id = \"X-Who\"\nroles = \"x-who\""),
        "\"x-who\"",
        "headers.roles",
        "x-who is already used by headers.user_id",
    );
    one(
        &h("session_id = \"X_User_Id\""),
        "\"X_User_Id\"",
        "headers.session_id",
        "already used by headers.user_id",
    );
    let c = ok(&h("session_id = \"X-Sid\""));
    assert_eq!(
        c.headers.session_id.map(|n| n.to_string()).as_deref(),
        Some("x-sid")
    );
}

// ---------------------------------------------------------------- [auth]

fn auth(body: &str) -> String {
    format!("{MIN}\n[auth]\n{body}\n")
}

#[test]
fn auth_rules() {
    one(
        &auth("path = \"auth\"\nsigning_key = \"p.pem\""),
        "\"auth\"",
        "auth.path",
        "must start with '/'",
    );
    one(
        &auth("path = \"/\"\nsigning_key = \"p.pem\""),
        "path = |\"/\"\nsigning",
        "auth.path",
        "whole site",
    );
    one(
        &auth("path = \"/a/../b\"\nsigning_key = \"p.pem\""),
        "\"/a/../b\"",
        "auth.path",
        "'..'",
    );
    one(
        &auth("path = \"/auth\""),
        "[auth]",
        "auth",
        "missing signing key",
    );
    one(
        &auth("path = \"/auth\"\nsigning_key = \"p.pem\"\nsigning_secret_env = \"GW_SECRET\""),
        "\"GW_SECRET\"",
        "auth.signing_secret_env",
        "not both",
    );
    one(
        &auth("path = \"/auth\"\nsigning_key = \"p.pem\"\nrefresh_max_uses = 0"),
        "uses = |0",
        "auth.refresh_max_uses",
        "from 1 to 4294967295",
    );
    one(
        &auth("path = \"/auth\"\nsigning_key = \"p.pem\"\nbind_refresh = \"mac\""),
        "\"mac\"",
        "auth.bind_refresh",
        "\"none\", \"device\", \"ip\"",
    );
    one(
        &auth(
            "path = \"/auth\"\nsigning_key = \"p.pem\"\naccess_ttl = \"1h\"\nrefresh_ttl = \"30m\"",
        ),
        "\"30m\"",
        "auth.refresh_ttl",
        "at least as long",
    );
    one(
        &auth("path = \"/auth\"\nsigning_key = \"p.pem\"\nsigning_kid = \"k9\""),
        "\"k9\"",
        "auth.signing_kid",
        "names no key in jwt.keys",
    );
    // A JWKS may hold the kid: no complaint.
    ok(
        &auth("path = \"/auth\"\nsigning_key = \"p.pem\"\nsigning_kid = \"k9\"").replace(
            "audience = \"api\"",
            "audience = \"api\"\njwks_url = \"https://idp/j\"",
        ),
    );
}

#[test]
fn auth_hs256_signing_must_verify() {
    let src = auth("path = \"/auth\"\nsigning_secret_env = \"GW_SECRET\"");
    let errs = errors(&src);
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["auth", "auth.signing_secret_env"],
        "{}",
        ConfigErrors(errs.clone())
    );
    let src = with("[\"EdDSA\"]", "[\"HS256\"]")
        .replace("public_key = \"pub.pem\"", "secret_env = \"GW_SECRET\"");
    let c = ok(&format!(
        "{src}\n[auth]\npath = \"/auth\"\nsigning_secret_env = \"GW_SECRET\"\n"
    ));
    // An assertion must be verifiable by backends from the JWKS: never with an HS256 secret.
    one(
        &format!(
            "{src}\n[auth]\npath = \"/auth\"\nsigning_secret_env = \"GW_SECRET\"\n[headers]\nassertion = \"X-Gateway-Assertion\"\n"
        ),
        "\"X-Gateway-Assertion\"",
        "headers.assertion",
        "not an HS256 secret",
    );
    assert!(
        matches!(c.auth.map(|a| a.signing_key), Some(SigningKey::Secret { value, .. }) if value == b"s3cret, thirty-two bytes or more, ok")
    );
}

// ---------------------------------------------------------------- [limits] [demo]

#[test]
fn limits_rules() {
    let l = |body: &str| format!("{MIN}\n[limits]\n{body}\n");
    one(
        &l("header_timeout = \"31s\""),
        "\"31s\"",
        "limits.header_timeout",
        "from 100ms to 30s",
    );
    one(
        &l("max_headers = 0"),
        "max_headers = |0",
        "limits.max_headers",
        "from 1 to 10000",
    );
    one(
        &l("max_header_bytes = 100"),
        "= |100",
        "limits.max_header_bytes",
        "from 1024",
    );
    one(
        &l("h2_max_streams = 0"),
        "streams = |0",
        "limits.h2_max_streams",
        "from 1",
    );
    one(
        &l("idle_timeout = \"10\""),
        "\"10\"",
        "limits.idle_timeout",
        "missing unit",
    );
    one(
        &l("max_connections = 99999999999"),
        "99999999999",
        "limits.max_connections",
        "from 1 to 1000000",
    );
}

#[test]
fn demo_rules() {
    one(
        &format!("{MIN}\n[demo]\necho = \"0.0.0.0:9000\"\n"),
        "\"0.0.0.0:9000\"",
        "demo.echo",
        "loopback only",
    );
    one(
        &format!("{MIN}\n[demo]\n"),
        "[demo]",
        "demo",
        "missing field `echo`",
    );
}

// ---------------------------------------------------------------- [[route]]

fn path(p: &str) -> String {
    with("path = \"/\"", &format!("path = \"{p}\""))
}

#[test]
fn route_paths() {
    assert_eq!(ok(&path("/api/")).routes[0].path, "/api");
    assert_eq!(ok(&path("/api/v1")).routes[0].path, "/api/v1");
    one(
        &path("api"),
        "path = |\"api\"",
        "route[0].path",
        "must start with '/'",
    );
    one(&path("/a/../b"), "\"/a/../b\"", "route[0].path", "'..'");
    one(&path("/a/./b"), "\"/a/./b\"", "route[0].path", "'.'");
    one(&path("/a//b"), "\"/a//b\"", "route[0].path", "'//'");
    one(
        &path("/a%2Fb"),
        "\"/a%2Fb\"",
        "route[0].path",
        "percent-escapes",
    );
}

#[test]
fn duplicate_routes() {
    let second = |p: &str, host: &str| {
        format!("{MIN}\n[[route]]\npath = \"{p}\"\n{host}upstream = \"http://127.0.0.1:9001\"\n")
    };
    let src = second("/api", "").replace("path = \"/\"\n", "path = \"/api/\"\n");
    one(
        &src,
        "\"/api\"",
        "route[1].path",
        "route[0] (line 14) already has this path",
    );
    ok(&second("/", "host = \"a.example\"\n"));
    let src = format!("{}\n[[route]]\npath = \"/x\"\nhost = \"A.example\"\nupstream = \"http://127.0.0.1:9002\"\n", second("/x/", "host = \"a.example\"\n"));
    one(
        &src,
        "\"/x\"",
        "route[2].path",
        "already has this host and path",
    );
}

#[test]
fn route_hosts_and_methods() {
    one(
        &route_with("host = \"a.example:443\""),
        "\"a.example:443\"",
        "route[0].host",
        "without port",
    );
    one(
        &route_with("host = \"*.example\""),
        "\"*.example\"",
        "route[0].host",
        "expected a host name",
    );
    assert_eq!(
        ok(&route_with("host = \"[::1]\"")).routes[0]
            .host
            .as_deref(),
        Some("[::1]")
    );
    one(
        &route_with("methods = [\"GET\", \"get\"]"),
        "\"get\"",
        "route[0].methods[1]",
        "methods are upper-case: \"GET\"",
    );
    one(
        &route_with("methods = [\"GE T\"]"),
        "\"GE T\"",
        "route[0].methods[0]",
        "expected an HTTP method",
    );
    one(
        &route_with("methods = []"),
        "[]",
        "route[0].methods",
        "at least one method",
    );
    let c = ok(&route_with("methods = [\"PURGE\", \"GET\", \"PURGE\"]"));
    assert_eq!(c.routes[0].methods.as_ref().map(Vec::len), Some(2));
}

#[test]
fn route_upstreams() {
    let up = |u: &str| {
        with(
            "upstream = \"http://127.0.0.1:9000\"",
            &format!("upstream = {u}"),
        )
    };
    one(
        &up("\"ftp://x\""),
        "\"ftp://x\"",
        "route[0].upstream",
        "expected \"http://host:port\", got \"ftp://x\"",
    );
    one(
        &up("\"https://a:443\""),
        "\"https://a:443\"",
        "route[0].upstream",
        "https upstreams are not supported yet",
    );
    one(
        &up("\"http://a\""),
        "\"http://a\"",
        "route[0].upstream",
        "the port is required",
    );
    one(
        &up("\"http://a:1/base\""),
        "\"http://a:1/base\"",
        "route[0].upstream",
        "no path or query",
    );
    one(
        &up("[\"http://a:1\", \"http://b\"]"),
        "\"http://b\"",
        "route[0].upstream[1]",
        "the port is required",
    );
    one(&up("[]"), "[]", "route[0].upstream", "at least one");
    let c = ok(&up("[\"http://a:1\", \"http://B:2/\"]"));
    let ups: Vec<&str> = c.routes[0].upstreams.iter().map(|a| a.as_str()).collect();
    assert_eq!(ups, ["a:1", "B:2"]);
}

#[test]
fn route_other_keys() {
    one(
        &route_with("protocol = \"h3\""),
        "\"h3\"",
        "route[0].protocol",
        "\"http1\", \"h2c\"",
    );
    one(
        &route_with("auth = \"maybe\""),
        "\"maybe\"",
        "route[0].auth",
        "\"required\", \"optional\", \"public\"",
    );
    one(
        &route_with("auth = \"public\"\nroles = [\"admin\"]"),
        "[\"admin\"]",
        "route[0].roles",
        "public route",
    );
    one(
        &route_with("roles = [\"\"]"),
        "\"\"",
        "route[0].roles[0]",
        "empty string",
    );
    one(
        &route_with("roles = [\"a,b\"]"),
        "\"a,b\"",
        "route[0].roles[0]",
        "cannot contain ','",
    );
    one(
        &route_with("timeout = \"2h\""),
        "\"2h\"",
        "route[0].timeout",
        "from 10ms to 1h",
    );
    one(
        &route_with("max_body = \"10 MiB\""),
        "\"10 MiB\"",
        "route[0].max_body",
        "like \"512KiB\"",
    );
    one(
        &route_with("max_body = -1"),
        "-1",
        "route[0].max_body",
        "got -1",
    );
    one(
        &route_with("max_body = 1.5"),
        "1.5",
        "route[0].max_body",
        "a number of bytes",
    );
    assert_eq!(
        ok(&route_with("max_body = \"1GiB\"")).routes[0].max_body,
        1 << 30
    );
    assert_eq!(ok(&route_with("max_body = 0")).routes[0].max_body, 0);
}

// ---------------------------------------------------------------- reading the file

#[test]
fn unreadable_file_is_named() {
    let path = Path::new("/nonexistent/dir/gateway.toml");
    let errs = load(path).map(|_| ()).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].file, path);
    let msg = errs[0].to_string();
    assert!(
        msg.starts_with("/nonexistent/dir/gateway.toml: cannot read the file: "),
        "{msg}"
    );
}

#[test]
fn file_is_read_and_paths_resolve_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, MIN).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.source, path);
    assert_eq!(c.tls.cert, dir.path().join("c.pem"));

    std::fs::write(&path, b"[listen]\nhttps = \"\xff\"\n").unwrap();
    let errs = load(&path).map(|_| ()).unwrap_err().0;
    assert_eq!((errs[0].line, errs[0].col), (2, 10), "{}", errs[0]);
    assert!(errs[0].reason.contains("not UTF-8"));
}

#[test]
fn relative_source_keeps_relative_paths() {
    let c = load_env(MIN, &[]).map(|c| c.tls.cert);
    assert_eq!(c.ok(), Some(PathBuf::from("/etc/gw/c.pem")));
    let c = load_str_with_env(MIN, Path::new("gateway.toml"), &|_| None).map(|c| c.tls.key);
    assert_eq!(c.ok(), Some(PathBuf::from("k.pem")));
}

#[test]
fn reload_and_otlp_tables() {
    let c = ok(MIN);
    assert_eq!(
        c.reload,
        crate::config::Reload {
            watch: true,
            interval: Duration::from_secs(2)
        }
    );
    assert_eq!(c.otlp, None);
    assert_eq!(c.limits.drain_linger, Duration::from_secs(2));
    let c = ok(&format!(
        "{MIN}\n[reload]\nwatch = false\ninterval = \"500ms\"\n[otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n"
    ));
    assert!(!c.reload.watch);
    assert_eq!(c.reload.interval, Duration::from_millis(500));
    let otlp = c.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(
        (otlp.service_name.as_str(), otlp.timeout),
        ("gateway", Duration::from_secs(10))
    );
    one(
        &format!("{MIN}\n[otlp]\nendpoint = \"http://collector.example:4318/v1/traces\"\n"),
        "\"http://collector",
        "otlp.endpoint",
        "only for loopback hosts",
    );
    one(
        &format!(
            "{MIN}\n[otlp]\nendpoint = \"https://c.example/v1/traces\"\nservice_name = \"\"\n"
        ),
        "\"\"",
        "otlp.service_name",
        "empty",
    );
    one(
        &format!("{MIN}\n[reload]\ninterval = \"10ms\"\n"),
        "\"10ms\"",
        "reload.interval",
        "from 100ms",
    );
    one(
        &format!("{MIN}\n[limits]\ndrain_linger = \"2m\"\n"),
        "\"2m\"",
        "limits.drain_linger",
        "to 1m",
    );
}

// ---------------------------------------------------------------- [listen] trust keys

/// `MIN` with `extra` lines added to `[listen]`.
fn listen_with(extra: &str) -> String {
    with(
        "https = \"127.0.0.1:8443\"\n",
        &format!("https = \"127.0.0.1:8443\"\n{extra}\n"),
    )
}

#[test]
fn trusted_proxies_and_proxy_protocol() {
    let c = ok(MIN);
    assert!(c.listen.trusted_proxies.is_empty());
    assert!(!c.listen.proxy_protocol);
    let c = ok(&listen_with(
        "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\", \"::1\", \"172.16.5.4/12\"]\nproxy_protocol = true",
    ));
    assert!(c.listen.proxy_protocol);
    let t = &c.listen.trusted_proxies;
    for ip in [
        "10.255.0.1",
        "192.0.2.7",
        "fd12::1",
        "::1",
        "172.31.0.1",
        "::ffff:10.0.0.1",
    ] {
        assert!(t.contains(ip.parse().unwrap()), "{ip}");
    }
    for ip in ["11.0.0.1", "192.0.2.8", "fe80::1", "172.32.0.1"] {
        assert!(!t.contains(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn bad_trusted_proxies_are_errors_at_their_entry() {
    for bad in [
        "10.0.0.0/33",
        "10.0.0",
        "localhost",
        "10.0.0.0/",
        "::1/129",
        "",
    ] {
        let src = listen_with(&format!("trusted_proxies = [\"10.0.0.0/8\", \"{bad}\"]"));
        one(
            &src,
            &format!("\"{bad}\"]"),
            "listen.trusted_proxies[1]",
            "expected an IP address or a CIDR",
        );
    }
}

#[test]
fn redirect_port_is_a_port() {
    assert_eq!(ok(MIN).listen.redirect_port, None);
    assert_eq!(
        ok(&listen_with("redirect_port = 443")).listen.redirect_port,
        Some(443)
    );
    for bad in ["0", "65536", "-1"] {
        let src = listen_with(&format!("redirect_port = {bad}"));
        one(
            &src,
            &format!("redirect_port = |{bad}"),
            "listen.redirect_port",
            "expected an integer from 1 to 65535",
        );
    }
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let src = listen_with("proxy_protocol = true");
    one(
        &src,
        "proxy_protocol = |true",
        "listen.proxy_protocol",
        "needs listen.trusted_proxies",
    );
}

// The keys of contract section 9 (`[[issuer]]`, `[oidc]`, ...) are tested in `tests/identities.rs`.
mod identities;
