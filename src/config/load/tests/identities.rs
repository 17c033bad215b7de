//! Tests of the keys of contract section 9, "Identities from elsewhere": `[[issuer]]`,
//! `[oidc]`, `[headers] assertion`, and a route's `issuers` and `claims_to_headers`.

use std::os::unix::ffi::OsStringExt;

use http::header::HeaderName;

use super::*;
use crate::config::{IssuerSession, OidcSecret, OWN_ISSUER};

/// The smallest `[[issuer]]`: every required key.
const ISSUER: &str = r#"[[issuer]]
name = "corp"
issuer = "https://idp.example.com"
audience = "api"
session = "none"
"#;

const AUTH: &str = "[auth]\nsigning_key = \"p.pem\"\n";

/// The smallest `[oidc]`: every required key.
const OIDC: &str = r#"[oidc]
name = "sso"
issuer = "https://login.example.com"
client_id = "gateway"
"#;

/// `MIN` with `route` lines added to its route, then `tables`.
fn file(route: &str, tables: &str) -> String {
    format!("{MIN}{route}\n\n{tables}\n")
}

/// `MIN` and one `[[issuer]]` with `extra` lines.
fn issuer(extra: &str) -> String {
    file("", &format!("{ISSUER}{extra}\n"))
}

/// `MIN` (with an access cookie), `[auth]` and `[oidc]` with `extra` lines.
fn oidc(extra: &str) -> String {
    with_cookie(&file("", &format!("{AUTH}\n{OIDC}{extra}\n")))
}

/// `src` with `jwt.cookie` set, as a browser login needs.
fn with_cookie(src: &str) -> String {
    src.replacen(
        "audience = \"api\"\n",
        "audience = \"api\"\ncookie = \"__Host-gw_access\"\n",
        1,
    )
}

#[test]
fn oidc_needs_cookies() {
    let src = file("", &format!("{AUTH}\n{OIDC}"));
    one(
        &src,
        "[oidc]",
        "oidc",
        "needs auth.cookies = true and jwt.cookie",
    );
    let src = oidc("").replace("[auth]\n", "[auth]\ncookies = false\n");
    one(
        &src,
        "[oidc]",
        "oidc",
        "needs auth.cookies = true and jwt.cookie",
    );
}

/// `MIN` with `route` lines added to its route, and one `[[issuer]]` named "corp".
fn route(route: &str) -> String {
    file(route, ISSUER)
}

// ---------------------------------------------------------------- defaults

#[test]
fn none_of_it_by_default() {
    let c = ok(MIN);
    assert!(c.issuers.is_empty());
    assert!(c.oidc.is_none());
    assert!(c.headers.assertion.is_none());
    assert_eq!(c.routes[0].issuers, [OWN_ISSUER]);
    assert!(c.routes[0].claims_to_headers.is_empty());
}

#[test]
fn issuer_defaults() {
    let c = ok(&issuer(""));
    let [i] = &c.issuers[..] else {
        panic!("{:?}", c.issuers)
    };
    assert_eq!(i.name, "corp");
    assert_eq!(i.issuer, "https://idp.example.com");
    assert_eq!(i.audience, "api");
    assert_eq!(i.algorithms, [Algorithm::RS256]);
    assert_eq!(
        (i.user_id_claim.as_str(), i.roles_claim.as_str()),
        ("sub", "roles")
    );
    assert_eq!(i.session, IssuerSession::None);
    assert_eq!(i.session_claim, "sid");
    assert_eq!(i.leeway, Duration::from_secs(30));
    assert_eq!(i.jwks_url, None);
    assert_eq!(i.jwks_refresh, Duration::from_secs(300));
    // Routes still take the gateway's own tokens only, unless they say otherwise.
    assert_eq!(c.routes[0].issuers, [OWN_ISSUER]);
}

#[test]
fn issuer_every_key() {
    let src = file(
        "issuers = [\"corp\", \"gateway\", \"m2m\"]",
        r#"[[issuer]]
name = "corp"
issuer = "http://127.0.0.1:8000/realms/x"
audience = "api"
algorithms = ["RS256", "ES256", "EdDSA"]
user_id_claim = "oid"
roles_claim = "groups"
session = "required"
session_claim = "sess"
leeway = "5s"
jwks_url = "https://idp.example.com/keys"
jwks_refresh = "1m"

[[issuer]]
name = "m2m"
issuer = "https://m2m.example.com/"
audience = "svc"
session = "required"
"#,
    );
    let c = ok(&src);
    let [a, b] = &c.issuers[..] else {
        panic!("{:?}", c.issuers)
    };
    assert_eq!(a.issuer, "http://127.0.0.1:8000/realms/x");
    assert_eq!(
        a.algorithms,
        [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
    );
    assert_eq!(
        (a.user_id_claim.as_str(), a.roles_claim.as_str()),
        ("oid", "groups")
    );
    assert_eq!(
        (a.session, a.session_claim.as_str()),
        (IssuerSession::Required, "sess")
    );
    assert_eq!(a.leeway, Duration::from_secs(5));
    assert_eq!(
        a.jwks_url.as_ref().map(ToString::to_string).as_deref(),
        Some("https://idp.example.com/keys")
    );
    assert_eq!(a.jwks_refresh, Duration::from_secs(60));
    // The exact `iss`, as written (a trailing '/' is part of it).
    assert_eq!(b.issuer, "https://m2m.example.com/");
    assert_eq!(
        (b.session, b.session_claim.as_str()),
        (IssuerSession::Required, "sid")
    );
    assert_eq!(c.routes[0].issuers, ["corp", "gateway", "m2m"]);
}

#[test]
fn issuer_urls_are_kept_for_later_errors() {
    let src = issuer("jwks_url = \"https://idp.example.com/keys\"");
    let c = ok(&src);
    let e = c.places.at_key("issuer[0].issuer", "cannot fetch");
    assert_eq!(
        (e.line, e.col),
        pos(&src, "issuer = |\"https://idp.example.com\"")
    );
    let e = c.places.at_key("issuer[0].jwks_url", "cannot fetch");
    assert_eq!(
        (e.line, e.col),
        pos(&src, "\"https://idp.example.com/keys\"")
    );
}

// ---------------------------------------------------------------- [[issuer]] rules

#[test]
fn issuer_names() {
    let named = |name: &str| {
        file(
            "",
            &ISSUER.replace("name = \"corp\"", &format!("name = \"{name}\"")),
        )
    };
    for good in ["a", "Corp.EU_1-x", &"n".repeat(64)] {
        assert_eq!(ok(&named(good)).issuers[0].name, good);
    }
    for bad in ["", "corp idp", "corp:x", "é", &"n".repeat(65)] {
        one(
            &named(bad),
            &format!("name = |\"{bad}\""),
            "issuer[0].name",
            "expected a name of 1 to 64 letters, digits, '.', '_' or '-'",
        );
    }
    for own in ["gateway", "Gateway"] {
        one(
            &named(own),
            &format!("\"{own}\""),
            "issuer[0].name",
            "stands for the gateway's own tokens",
        );
    }
    let second = ISSUER.replace("idp.example.com", "other.example.com");
    let src = file("", &format!("{ISSUER}\n{second}"));
    let at = src.rfind("\"corp\"").unwrap_or_default();
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = &errs[0];
    assert_eq!(
        (e.key.as_str(), e.line),
        ("issuer[1].name", src[..at].matches('\n').count() + 1)
    );
    assert!(
        e.reason.contains("issuer[0] already has the name \"corp\""),
        "{e}"
    );
}

#[test]
fn issuer_url_rules() {
    let url = |u: &str| {
        file(
            "",
            &ISSUER.replace("\"https://idp.example.com\"", &format!("\"{u}\"")),
        )
    };
    for good in [
        "https://idp.example.com/realms/main",
        "http://localhost:8080",
        "http://[::1]:9000/x",
    ] {
        assert_eq!(ok(&url(good)).issuers[0].issuer, good);
    }
    one(
        &url("http://idp.example.com"),
        "\"http://idp",
        "issuer[0].issuer",
        "only for loopback hosts",
    );
    one(
        &url("idp.example.com"),
        "\"idp.example.com\"",
        "issuer[0].issuer",
        "expected an https:// URL",
    );
    one(
        &url("https://idp.example.com/?tenant=1"),
        "\"https://idp.example.com/?",
        "issuer[0].issuer",
        "no query or fragment",
    );
    one(
        &url("https://idp.example.com/#x"),
        "\"https://idp.example.com/#",
        "issuer[0].issuer",
        "no query or fragment",
    );
    // Unique among issuers ...
    let second = ISSUER.replace("\"corp\"", "\"corp2\"");
    let src = file("", &format!("{ISSUER}\n{second}"));
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].key, "issuer[1].issuer");
    assert!(errs[0]
        .reason
        .contains("issuer[0] already has this issuer URL"));
    // ... and not the gateway's own.
    let src = issuer("").replace("issuer = \"gw\"", "issuer = \"https://idp.example.com\"");
    one(
        &src,
        "issuer = |\"https://idp.example.com\"\naudience = \"api\"\nsession",
        "issuer[0].issuer",
        "this is jwt.issuer",
    );
}

#[test]
fn issuer_audience_and_claims() {
    let src = file(
        "",
        &ISSUER.replace("audience = \"api\"", "audience = \" \""),
    );
    one(
        &src,
        "\" \"",
        "issuer[0].audience",
        "expected the audience (`aud`)",
    );
    one(
        &issuer("user_id_claim = \"\""),
        "\"\"",
        "issuer[0].user_id_claim",
        "a claim name",
    );
    one(
        &issuer("roles_claim = \"\""),
        "\"\"",
        "issuer[0].roles_claim",
        "a claim name",
    );
}

#[test]
fn issuer_algorithms() {
    let algs = |list: &str| issuer(&format!("algorithms = {list}"));
    assert_eq!(
        ok(&algs("[\"PS256\", \"ES384\"]")).issuers[0].algorithms,
        [Algorithm::PS256, Algorithm::ES384]
    );
    for hs in ["HS256", "HS384", "HS512"] {
        one(
            &algs(&format!("[\"RS256\", \"{hs}\"]")),
            &format!("\"{hs}\""),
            "issuer[0].algorithms[1]",
            "keys come from its JWKS, and symmetric keys are never taken from one",
        );
    }
    one(
        &algs("[\"RS256\", \"RS256\"]"),
        "\"RS256\"]",
        "issuer[0].algorithms[1]",
        "RS256 is listed twice",
    );
    one(
        &algs("[]"),
        "[]",
        "issuer[0].algorithms",
        "at least one algorithm",
    );
    one(
        &algs("[\"none\"]"),
        "[|\"none\"]",
        "issuer[0].algorithms[0]",
        "never accepted",
    );
    one(
        &algs("[\"rs256\"]"),
        "\"rs256\"",
        "issuer[0].algorithms[0]",
        "case-sensitive: \"RS256\"",
    );
}

#[test]
fn issuer_session_must_be_chosen() {
    let src = file("", &ISSUER.replace("session = \"none\"\n", ""));
    one(
        &src,
        "[[issuer]]",
        "issuer[0]",
        "missing `session`: choose \"none\"",
    );
    let src = file("", &ISSUER.replace("\"none\"", "\"optional\""));
    one(
        &src,
        "\"optional\"",
        "issuer[0].session",
        "expected one of \"none\", \"required\"",
    );
    one(
        &issuer("session_claim = \"sid\""),
        "\"sid\"",
        "issuer[0].session_claim",
        "only used with session = \"required\"",
    );
    let src = file("", &ISSUER.replace("\"none\"", "\"required\""));
    let src = format!("{src}session_claim = \"\"\n");
    one(&src, "\"\"", "issuer[0].session_claim", "a claim name");
}

#[test]
fn issuer_durations_and_jwks() {
    one(
        &issuer("leeway = \"6m\""),
        "\"6m\"",
        "issuer[0].leeway",
        "from 0s to 5m",
    );
    one(
        &issuer("jwks_refresh = \"5s\""),
        "\"5s\"",
        "issuer[0].jwks_refresh",
        "from 10s to 1d",
    );
    one(
        &issuer("jwks_url = \"http://keys.example.com/jwks\""),
        "\"http://keys",
        "issuer[0].jwks_url",
        "only for loopback hosts",
    );
    assert!(
        ok(&issuer("jwks_url = \"http://127.0.0.1:1/jwks\"")).issuers[0]
            .jwks_url
            .is_some()
    );
}

#[test]
fn issuer_tables_are_checked_like_the_others() {
    one(
        &issuer("audiences = [\"x\"]"),
        "audiences",
        "issuer[0].audiences",
        "unknown field `audiences`, expected one of `name`, `issuer`, `audience`",
    );
    one(
        &file("", &ISSUER.replace("[[issuer]]", "[issuer]")),
        "[issuer]",
        "issuer",
        "expected [[issuer]] tables (note the double brackets)",
    );
    one(
        &file("", &ISSUER.replace("audience = \"api\"\n", "")),
        "[[issuer]]",
        "issuer[0]",
        "missing field `audience`",
    );
}

#[test]
fn every_mistake_of_an_issuer_is_reported() {
    let src = file(
        "",
        r#"[[issuer]]
name = "gateway"
issuer = "http://idp.example.com"
audience = ""
algorithms = ["HS256"]
session_claim = "sid"
leeway = "1h"
"#,
    );
    let keys: Vec<String> = errors(&src).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "issuer[0]",
            "issuer[0].name",
            "issuer[0].issuer",
            "issuer[0].audience",
            "issuer[0].algorithms[0]",
            "issuer[0].leeway",
        ]
    );
    // With session = "none", the stray session_claim is the one mistake more.
    let src = src.replace("session_claim", "session = \"none\"\nsession_claim");
    assert_eq!(errors(&src).len(), 6);
}

// ---------------------------------------------------------------- [oidc]

#[test]
fn oidc_defaults() {
    let c = ok(&oidc(""));
    let o = c.oidc.expect("[oidc] present");
    assert_eq!(o.name, "sso");
    assert_eq!(o.issuer, "https://login.example.com");
    assert_eq!(o.client_id, "gateway");
    assert_eq!(o.client_secret, None);
    assert_eq!(o.redirect_path, "/auth/oidc/callback");
    assert_eq!(o.scopes, ["openid", "email", "profile"]);
    assert_eq!(o.roles_claim, "groups");
    assert_eq!(o.algorithms, [Algorithm::RS256]);
    assert_eq!(o.leeway, Duration::from_secs(30));
    // [oidc] is no token issuer: routes are unchanged.
    assert_eq!(c.routes[0].issuers, [OWN_ISSUER]);
}

#[test]
fn oidc_every_key() {
    let src = oidc(
        r#"client_secret_env = "GW_SECRET"
redirect_path = "/login/done/"
scopes = ["openid", "offline_access", "https://graph/.default"]
roles_claim = "roles"
algorithms = ["ES256"]
leeway = "0s""#,
    );
    let o = ok(&src).oidc.expect("[oidc] present");
    assert_eq!(
        o.client_secret,
        Some(OidcSecret(
            "s3cret, thirty-two bytes or more, ok".to_owned()
        ))
    );
    assert_eq!(o.redirect_path, "/login/done");
    assert_eq!(
        o.scopes,
        ["openid", "offline_access", "https://graph/.default"]
    );
    assert_eq!(o.roles_claim, "roles");
    assert_eq!(o.algorithms, [Algorithm::ES256]);
    assert_eq!(o.leeway, Duration::ZERO);
    // The default callback follows auth.path.
    let src = oidc("").replace("[auth]\n", "[auth]\npath = \"/sso/\"\n");
    let o = ok(&src).oidc.expect("[oidc] present");
    assert_eq!(o.redirect_path, "/sso/oidc/callback");
}

#[test]
fn oidc_needs_auth() {
    let src = file("", OIDC);
    one(&src, "[oidc]", "oidc", "needs [auth]");
}

#[test]
fn oidc_names_and_urls() {
    one(
        &oidc("").replace("\"sso\"", "\"gateway\""),
        "\"gateway\"\nissuer",
        "oidc.name",
        "stands for the gateway's own tokens",
    );
    one(
        &oidc("").replace("\"sso\"", "\"s s\""),
        "\"s s\"",
        "oidc.name",
        "expected a name of 1 to 64",
    );
    // Unique with the issuers, wherever [oidc] stands.
    let src = with_cookie(&file(
        "",
        &format!("{AUTH}\n{}\n{ISSUER}", OIDC.replace("\"sso\"", "\"corp\"")),
    ));
    one(
        &src,
        "\"corp\"\nissuer = \"https://login",
        "oidc.name",
        "issuer[0] already has the name \"corp\"",
    );
    // The same provider may both log users in and issue tokens.
    let src = with_cookie(&file(
        "",
        &format!(
            "{AUTH}\n{}\n{ISSUER}",
            OIDC.replace("login.example.com", "idp.example.com")
        ),
    ));
    ok(&src);
    one(
        &oidc("").replace(
            "\"https://login.example.com\"",
            "\"http://login.example.com\"",
        ),
        "\"http://login",
        "oidc.issuer",
        "only for loopback hosts",
    );
    one(
        &oidc("").replace(
            "\"https://login.example.com\"",
            "\"https://login.example.com?x\"",
        ),
        "\"https://login",
        "oidc.issuer",
        "no query or fragment",
    );
    one(
        &oidc("").replace("client_id = \"gateway\"", "client_id = \"\""),
        "\"\"",
        "oidc.client_id",
        "the client id",
    );
    one(
        &oidc("").replace("client_id = \"gateway\"\n", ""),
        "[oidc]",
        "oidc",
        "missing field `client_id`",
    );
    one(
        &oidc("client_secret = \"x\""),
        "client_secret =",
        "oidc.client_secret",
        "unknown field `client_secret`",
    );
}

#[test]
fn oidc_client_secret() {
    one(
        &oidc("client_secret_env = \"GW_UNSET\""),
        "\"GW_UNSET\"",
        "oidc.client_secret_env",
        "GW_UNSET is not set",
    );
    one(
        &oidc("client_secret_env = \"GW_EMPTY\""),
        "\"GW_EMPTY\"",
        "oidc.client_secret_env",
        "GW_EMPTY is empty",
    );
    one(
        &oidc("client_secret_env = \"GW-X\""),
        "\"GW-X\"",
        "oidc.client_secret_env",
        "the name of an environment variable",
    );
    let src = oidc("client_secret_env = \"GW_OIDC\"");
    let c = load_env(&src, &[("GW_OIDC", "short is fine")]).map_err(|e| e.to_string());
    assert_eq!(
        c.map(|c| c.oidc.and_then(|o| o.client_secret)),
        Ok(Some(OidcSecret("short is fine".to_owned())))
    );
    let latin1 = |name: &str| (name == "GW_OIDC").then(|| OsString::from_vec(b"caf\xe9".to_vec()));
    let errs = load_str_with_env(&src, Path::new(SOURCE), &latin1)
        .map(|_| ())
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].key, "oidc.client_secret_env");
    assert!(
        errs[0].reason.contains("$GW_OIDC is not UTF-8"),
        "{}",
        errs[0]
    );
    // Never printed.
    let secret = OidcSecret("hunter2".to_owned());
    assert!(!format!("{secret:?}").contains("hunter2"));
}

#[test]
fn oidc_redirect_path() {
    let at = |p: &str| oidc(&format!("redirect_path = \"{p}\""));
    assert_eq!(
        ok(&at("/cb/")).oidc.map(|o| o.redirect_path).as_deref(),
        Some("/cb")
    );
    for (bad, why) in [
        ("cb", "must start with '/'"),
        ("/a/../cb", "'..'"),
        ("/cb?x=1", "no query or fragment"),
        ("/c%62", "percent-escapes"),
    ] {
        one(&at(bad), &format!("\"{bad}\""), "oidc.redirect_path", why);
    }
    for endpoint in ["login", "backchannel-logout"] {
        one(
            &at(&format!("/auth/oidc/{endpoint}/")),
            "\"/auth/oidc/",
            "oidc.redirect_path",
            &format!("the auth center's OpenID {endpoint} endpoint"),
        );
    }
    // Against auth.path as configured.
    let src = at("/sso/oidc/login").replace("[auth]\n", "[auth]\npath = \"/sso\"\n");
    one(
        &src,
        "\"/sso/oidc/login\"",
        "oidc.redirect_path",
        "OpenID login endpoint",
    );
    ok(&at("/sso/oidc/login"));
}

#[test]
fn oidc_scopes() {
    let scopes = |list: &str| oidc(&format!("scopes = {list}"));
    assert_eq!(
        ok(&scopes("[\"openid\"]")).oidc.map(|o| o.scopes),
        Some(vec!["openid".to_owned()])
    );
    one(
        &scopes("[\"email\", \"profile\"]"),
        "[\"email\"",
        "oidc.scopes",
        "must contain \"openid\"",
    );
    one(
        &scopes("[]"),
        "[]",
        "oidc.scopes",
        "must contain \"openid\"",
    );
    one(
        &scopes("[\"openid\", \"\"]"),
        "\"\"",
        "oidc.scopes[1]",
        "expected a scope, got an empty string",
    );
    for bad in ["a b", "a\\\"b", "a\\\\b", "é"] {
        one(
            &scopes(&format!("[\"openid\", \"{bad}\"]")),
            &format!("\"{bad}\""),
            "oidc.scopes[1]",
            "RFC 6749 section 3.3",
        );
    }
    one(
        &scopes("[\"openid\", \"email\", \"openid\"]"),
        "\"openid\"]",
        "oidc.scopes[2]",
        "\"openid\" is listed twice",
    );
}

#[test]
fn oidc_other_keys() {
    one(
        &oidc("algorithms = [\"HS256\"]"),
        "\"HS256\"",
        "oidc.algorithms[0]",
        "symmetric keys are never taken from one",
    );
    one(
        &oidc("roles_claim = \"\""),
        "\"\"",
        "oidc.roles_claim",
        "a claim name",
    );
    one(
        &oidc("leeway = \"10m\""),
        "\"10m\"",
        "oidc.leeway",
        "from 0s to 5m",
    );
}

// ---------------------------------------------------------------- [headers] assertion

#[test]
fn assertion_header() {
    let h = |body: &str| format!("{MIN}\n{AUTH}\n[headers]\n{body}\n");
    let c = ok(&h("assertion = \"X-Gateway-Assertion\""));
    assert_eq!(
        c.headers.assertion.as_ref().map(HeaderName::as_str),
        Some("x-gateway-assertion")
    );
    one(
        &format!("{MIN}\n[headers]\nassertion = \"X-Gateway-Assertion\"\n"),
        "\"X-Gateway-Assertion\"",
        "headers.assertion",
        "needs [auth]: the assertion is signed with the auth center's signing key",
    );
    one(
        &h("assertion = \"X Assertion\""),
        "\"X Assertion\"",
        "headers.assertion",
        "expected a header name",
    );
    one(
        &h("assertion = \"Authorization\""),
        "\"Authorization\"",
        "headers.assertion",
        "standard header",
    );
    // Never an identity header, in any case, '_' read as '-'.
    one(
        &h("assertion = \"x_user_roles\""),
        "\"x_user_roles\"",
        "headers.assertion",
        "already used by headers.roles",
    );
    one(
        &h("user_id = \"X-Uid\"\nassertion = \"X-UID\""),
        "\"X-UID\"",
        "headers.assertion",
        "already used by headers.user_id",
    );
    one(
        &h("session_id = \"X-Sid\"\nassertion = \"X_Sid\""),
        "\"X_Sid\"",
        "headers.assertion",
        "already used by headers.session_id",
    );
    // The usual names too, even when [headers] renames them or leaves them out.
    one(
        &h("assertion = \"X-Session-Id\""),
        "\"X-Session-Id\"",
        "headers.assertion",
        "usual name of an identity header",
    );
    one(
        &h("user_id = \"X-Uid\"\nassertion = \"X-User-Id\""),
        "\"X-User-Id\"",
        "headers.assertion",
        "usual name of an identity header",
    );
}

// ---------------------------------------------------------------- [[route]] issuers

#[test]
fn route_issuers() {
    assert_eq!(
        ok(&route("issuers = [\"corp\"]")).routes[0].issuers,
        ["corp"]
    );
    assert_eq!(
        ok(&route(
            "auth = \"optional\"\nissuers = [\"gateway\", \"corp\"]"
        ))
        .routes[0]
            .issuers,
        ["gateway", "corp"]
    );
    one(
        &route("issuers = [\"gateway\", \"corp2\"]"),
        "\"corp2\"",
        "route[0].issuers[1]",
        "no [[issuer]] named \"corp2\"; expected one of \"gateway\", \"corp\"",
    );
    one(
        &route("issuers = [\"corp\", \"corp\"]"),
        "\"corp\"]",
        "route[0].issuers[1]",
        "\"corp\" is listed twice",
    );
    one(
        &route("issuers = [\"gateway\", \"gateway\"]"),
        "\"gateway\"]",
        "route[0].issuers[1]",
        "listed twice",
    );
    one(
        &route("issuers = []"),
        "[]",
        "route[0].issuers",
        "at least one issuer",
    );
    one(
        &route("auth = \"public\"\nissuers = [\"corp\"]"),
        "[\"corp\"]",
        "route[0].issuers",
        "a public route checks no token",
    );
    // [oidc]'s name is no token issuer.
    let src = with_cookie(&file("issuers = [\"sso\"]", &format!("{AUTH}\n{OIDC}")));
    one(
        &src,
        "\"sso\"]",
        "route[0].issuers[0]",
        "that is [oidc]'s name, and its logins get the gateway's own tokens",
    );
    // Without any [[issuer]], only "gateway".
    one(
        &route_with("issuers = [\"corp\"]"),
        "\"corp\"",
        "route[0].issuers[0]",
        "expected one of \"gateway\"",
    );
    // An [[issuer]] that is itself wrong is still a name routes may use: one error, not two.
    let src = route("issuers = [\"corp\"]")
        .replace("audience = \"api\"\nsession", "audience = \"\"\nsession");
    one(
        &src,
        "\"\"\nsession",
        "issuer[0].audience",
        "expected the audience",
    );
}

#[test]
fn a_route_naming_an_issuer_that_did_not_parse_is_not_blamed() {
    let src = file(
        "issuers = [\"corp\"]",
        &ISSUER.replace("audience = \"api\"", "audience = 1"),
    );
    one(
        &src,
        "1\nsession",
        "issuer[0].audience",
        "invalid type: integer `1`",
    );
}

// ---------------------------------------------------------------- [[route]] claims_to_headers

/// `MIN` with a route's `claims_to_headers = {table}` (and `[auth]` plus `[headers] body`).
fn claims(table: &str, headers: &str) -> String {
    file(
        &format!("claims_to_headers = {table}"),
        &format!("{AUTH}\n[headers]\n{headers}\n"),
    )
}

#[test]
fn claims_to_headers_in_file_order() {
    let c = ok(&claims(
        "{ \"X-User-Email\" = \"email\", \"X-Tenant\" = \"tid\", \"X-A\" = \"a\" }",
        "",
    ));
    let got: Vec<(&str, &str)> = c.routes[0]
        .claims_to_headers
        .iter()
        .map(|(h, c)| (h.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        got,
        [("x-user-email", "email"), ("x-tenant", "tid"), ("x-a", "a")]
    );
    assert!(ok(&claims("{}", "")).routes[0].claims_to_headers.is_empty());
    // On an optional route too.
    ok(&file(
        "auth = \"optional\"\nclaims_to_headers = { \"X-Email\" = \"email\" }",
        "",
    ));
}

#[test]
fn claims_to_headers_reserved_names() {
    for reserved in [
        "Connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Foo",
        "Content-Length",
        "Host",
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Anything",
        "X_Forwarded_Proto",
        "X-Real-IP",
        "x_real_ip",
        "X-Request-Id",
    ] {
        let errs = errors(&claims(&format!("{{ \"{reserved}\" = \"email\" }}"), ""));
        assert_eq!(errs.len(), 1, "{reserved}: {}", ConfigErrors(errs.clone()));
        let e = &errs[0];
        assert_eq!(
            e.key,
            format!("route[0].claims_to_headers.{reserved}"),
            "{e}"
        );
        assert!(
            e.reason.contains("standard header") || e.reason.contains("forwarding header"),
            "{e}"
        );
    }
    one(
        &claims("{ \"X Email\" = \"email\" }", ""),
        "\"X Email\"",
        "route[0].claims_to_headers.X Email",
        "expected a header name (letters, digits, '-'), like \"X-User-Email\"",
    );
}

#[test]
fn claims_to_headers_never_an_identity_header() {
    let src = |h: &str, headers: &str| claims(&format!("{{ \"{h}\" = \"email\" }}"), headers);
    one(
        &src("X-User-Id", ""),
        "\"X-User-Id\" =",
        "route[0].claims_to_headers.X-User-Id",
        "already used by headers.user_id",
    );
    one(
        &src("x_user_roles", ""),
        "\"x_user_roles\"",
        "route[0].claims_to_headers.x_user_roles",
        "already used by headers.roles",
    );
    one(
        &src("X-Session-Id", ""),
        "\"X-Session-Id\"",
        "route[0].claims_to_headers.X-Session-Id",
        "already used by the identity headers (their usual names",
    );
    one(
        &src("X-Uid", "user_id = \"X-UID\""),
        "\"X-Uid\"",
        "route[0].claims_to_headers.X-Uid",
        "already used by headers.user_id",
    );
    one(
        &src("X-User-Id", "user_id = \"X-UID\""),
        "\"X-User-Id\"",
        "route[0].claims_to_headers.X-User-Id",
        "already used by the identity headers",
    );
    one(
        &src("X-Gateway-Assertion", "assertion = \"X-Gateway-Assertion\""),
        "\"X-Gateway-Assertion\" =",
        "route[0].claims_to_headers.X-Gateway-Assertion",
        "already used by headers.assertion",
    );
}

#[test]
fn claims_to_headers_other_rules() {
    one(
        &claims("{ \"X-Email\" = \"email\", \"x_email\" = \"mail\" }", ""),
        "\"x_email\"",
        "route[0].claims_to_headers.x_email",
        "x_email is already set here as X-Email",
    );
    one(
        &claims("{ \"X-Email\" = \"email\", \"x-EMAIL\" = \"mail\" }", ""),
        "\"x-EMAIL\"",
        "route[0].claims_to_headers.x-EMAIL",
        "already set here",
    );
    one(
        &claims("{ \"X-Email\" = \"\" }", ""),
        "\"\"",
        "route[0].claims_to_headers.X-Email",
        "expected a claim name",
    );
    one(
        &claims("{ \"X-Email\" = 1 }", ""),
        "1 }",
        "route[0].claims_to_headers.X-Email",
        "invalid type: integer `1`, expected a string",
    );
    one(
        &claims("[\"email\"]", ""),
        "[\"email\"]",
        "route[0].claims_to_headers",
        "a table of header names to claim names",
    );
    one(
        &file(
            "auth = \"public\"\nclaims_to_headers = { \"X-Email\" = \"email\" }",
            "",
        ),
        "{ \"X-Email\"",
        "route[0].claims_to_headers",
        "a public route has no token",
    );
}

#[test]
fn every_mistake_of_a_route_s_token_keys_is_reported() {
    let src = route(
        "issuers = [\"nope\", \"corp\", \"corp\"]\nclaims_to_headers = { \"Host\" = \"h\", \"X-Ok\" = \"\", \"X-User-Id\" = \"sub\" }",
    );
    let keys: Vec<String> = errors(&src).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "route[0].issuers[0]",
            "route[0].issuers[2]",
            "route[0].claims_to_headers.Host",
            "route[0].claims_to_headers.X-Ok",
            "route[0].claims_to_headers.X-User-Id",
        ]
    );
}

#[test]
fn names_unique_ignoring_case_and_id_tokens_never_bearer_tokens() {
    let two = format!(
        "{ISSUER}\n{}",
        ISSUER
            .replace("\"corp\"", "\"CORP\"")
            .replace("idp.example.com", "idp2.example.com")
    );
    one(
        &issuer_file(&two),
        "\"CORP\"",
        "issuer[1].name",
        "whatever their case",
    );
    // [[issuer]] of [oidc]'s provider whose audience is [oidc]'s client id.
    let src = with_cookie(&file(
        "",
        &format!(
            "{AUTH}\n{}\n{}",
            OIDC.replace("login.example.com", "idp.example.com"),
            ISSUER.replace("audience = \"api\"", "audience = \"gateway\"")
        ),
    ));
    one(
        &src,
        "\"gateway\"\nsession",
        "issuer[0].audience",
        "its ID tokens would pass as bearer tokens",
    );
}

fn issuer_file(tables: &str) -> String {
    file("", tables)
}
