//! The OpenID login: `GET {auth.path}/oidc/login?return_to=/app` sends the browser to the
//! provider; the provider sends it back to `redirect_path` with a code.
//!
//! What makes a login this browser's and single-use: the begin step keeps `state`, `nonce`,
//! the PKCE verifier and `return_to` server-side (the session store, ten minutes) under a
//! random id that only this browser's `__Host-gw_oidc` cookie names. The callback takes that
//! record (read and deleted in one step) before anything else, so a callback without the
//! cookie (another browser), with another `state`, or a second time, finds nothing and is 400;
//! the code is then traded with the verifier (PKCE), and the ID token must carry the nonce.
//!
//! The callback answers 200 with a tiny page that moves to `return_to` itself rather than a
//! 302: the session cookies are `SameSite=Strict`, and a browser does not send them on a
//! navigation that a cross-site redirect chain began (the provider's redirect to us); the
//! page's own navigation is same-site, so the first request to `return_to` carries them.

use std::net::SocketAddr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::{LOCATION, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::super::login::{bound_device, open_session, user_agent, Login};
use super::super::{client_ip, cookies, lockout, lockout_address, AuthCenter, Deps};
use super::Provider;
use crate::auth::jwt::claims;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};

/// How long a begun login may take to come back.
const LOGIN_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Longest `return_to` kept (a longer one goes to `/`): it is stored with every login.
const MAX_RETURN_TO: usize = 512;
/// Most roles taken from the provider.
const MAX_ROLES: usize = 128;

/// What the begin step keeps for the callback.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    redirect_uri: String,
}

/// 32 random bytes, base64url (43 characters).
fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// 302 to the provider's authorization endpoint, with this browser's login cookie.
pub(in crate::auth_center) async fn begin(
    provider: &Provider,
    gw: &Deps,
    peer: SocketAddr,
    req: &Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    // Each begun login is a store record for ten minutes: bounded per client address.
    lockout::count_oidc_begin(gw.auth.store(), &lockout_address(peer)).await?;
    let query = query_pairs(req.uri().query())?;
    // A login begun from another site (a link, a form) goes home afterwards, wherever it
    // asked to go: the page that ends a login navigates same-site, with the session
    // cookies, and another site must not choose where (`Sec-Fetch-Site`; absent in
    // non-browser clients).
    let from_here = match req.headers().get("sec-fetch-site") {
        None => true,
        Some(v) => matches!(v.as_bytes(), b"same-origin" | b"none"),
    };
    let asked = one(&query, "return_to")?.filter(|_| from_here);
    let return_to = same_origin_path(asked);
    // The pipeline has checked Host already: one valid host[:port].
    let host = crate::http::host::of_request(req).ok_or(GatewayError::BadHost)?;
    let redirect_uri = format!("https://{host}{}", provider.redirect_path());
    let id = random();
    let login = LoginState {
        state: random(),
        nonce: random(),
        verifier: random(),
        return_to,
        redirect_uri,
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(login.verifier.as_bytes()));
    let saved = serde_json::to_string(&login)
        .map_err(|e| GatewayError::Internal(format!("login state: {e}")))?;
    gw.auth.store().oidc_put(&id, &saved, LOGIN_TTL).await?;

    let cfg = &provider.cfg;
    let mut location = provider.authorization_endpoint.to_string();
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", &login.redirect_uri)
            .append_pair("scope", &cfg.scopes.join(" "))
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish(),
    );
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| GatewayError::Internal("authorization URL".into()))?,
    );
    if let Some(c) = cookies::login_cookie(&id, LOGIN_TTL.as_secs()) {
        h.append(SET_COOKIE, c);
    }
    Ok(resp)
}

/// The provider's redirect back: checks, trades the code, opens the gateway session.
pub(in crate::auth_center) async fn callback(
    center: &AuthCenter,
    provider: &Provider,
    gw: &Deps,
    peer: SocketAddr,
    req: &Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let refused = GatewayError::LoginRefused;
    let query = query_pairs(req.uri().query())?;
    // The login this browser began, taken once: without it nothing else is looked at.
    let id = cookies::login_from(req.headers())
        .map_err(|()| refused("login_cookie_repeated"))?
        .ok_or(refused("no_login_cookie"))?;
    let saved = gw
        .auth
        .store()
        .oidc_take(&id)
        .await?
        .ok_or(refused("unknown_or_used_login"))?;
    let login: LoginState =
        serde_json::from_str(&saved).map_err(|_| refused("unknown_or_used_login"))?;
    let state = one(&query, "state")?.ok_or(refused("no_state"))?;
    if !bool::from(state.as_bytes().ct_eq(login.state.as_bytes())) {
        return Err(refused("state_mismatch"));
    }
    if let Some(error) = one(&query, "error")? {
        tracing::info!(error = %truncate_for_log(error), "the provider refused the login");
        return Err(refused("provider_error"));
    }
    let code = one(&query, "code")?.ok_or(refused("no_code"))?;

    let tokens = exchange(provider, code, &login).await?;
    let claims = provider
        .verifier
        .verify_claims(&tokens.id_token, &["JWT"])
        .await
        .map_err(|e| {
            tracing::info!(reason = e.reason(), "ID token refused");
            refused("id_token_invalid")
        })?;
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(login.nonce.as_bytes())) {
        return Err(refused("nonce_mismatch"));
    }
    check_azp(&claims, &provider.cfg.client_id)?;
    let sub = claims::identifier(claims.get("sub"), "user_id")
        .map_err(|_| refused("id_token_invalid"))?;
    // What the ID token lacks (roles, claims routes pass on) may be in userinfo.
    let complete = claims.contains_key(&provider.cfg.roles_claim)
        && provider.kept_claims.iter().all(|k| claims.contains_key(k));
    let info = match complete {
        true => Map::new(),
        false => userinfo(provider, &tokens, &sub).await?,
    };
    let find = |name: &str| claims.get(name).or_else(|| info.get(name));
    let roles = find(&provider.cfg.roles_claim)
        .map(lenient_roles)
        .unwrap_or_default();
    let kept = provider
        .kept_claims
        .iter()
        .filter_map(|k| Some((k.clone(), claims::header_text(find(k)?)?)))
        .collect();

    let user_id = provider.user_id(&sub);
    // The provider session's link first: a back-channel logout arriving while the session
    // is written finds it (a link to a session not yet written ends nothing).
    let sid = super::super::tokens::new_session_id();
    if let Some(provider_sid) = claims.get("sid").and_then(Value::as_str) {
        gw.auth
            .store()
            .oidc_link(
                &provider.provider_session(provider_sid),
                &sid,
                center.refresh_ttl(),
            )
            .await?;
    }
    let new = Login {
        sid,
        user_id: &user_id,
        roles: &roles,
        claims: kept,
        ip: client_ip(peer),
        user_agent: user_agent(req.headers()),
        device_id: bound_device(center, None),
    };
    let opened = open_session(center, gw, new).await?;
    tracing::info!(user_id = %user_id, session_id = %opened.sid, provider = %provider.cfg.name, "login");

    let mut resp = signed_in_page(&login.return_to);
    let h = resp.headers_mut();
    for c in center.pair_cookies(
        &opened.access,
        &opened.refresh,
        opened.ttl,
        opened.device_id.as_deref(),
    ) {
        h.append(SET_COOKIE, c);
    }
    if let Some(c) = cookies::login_cookie("", 0) {
        h.append(SET_COOKIE, c);
    }
    Ok(resp)
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
    #[serde(default)]
    access_token: Option<String>,
}

/// Trades the code (with the PKCE verifier and the client's credentials) for tokens. A code
/// the provider refuses (used, expired, another client's) is 400; an unreachable provider 502.
async fn exchange(
    provider: &Provider,
    code: &str,
    login: &LoginState,
) -> Result<TokenAnswer, GatewayError> {
    let cfg = &provider.cfg;
    // Built whole before any await (the serializer is not Send).
    let (form, authorization) = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &login.redirect_uri)
            .append_pair("code_verifier", &login.verifier);
        let authorization = match &cfg.client_secret {
            // client_secret_basic (RFC 6749 2.3.1: both parts form-encoded first).
            Some(secret) => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&cfg.client_id), enc(&secret.0));
                let value = format!("Basic {}", STANDARD.encode(pair));
                Some(
                    HeaderValue::from_str(&value)
                        .map_err(|_| GatewayError::Internal("client credentials".into()))?,
                )
            }
            None => {
                form.append_pair("client_id", &cfg.client_id);
                None
            }
        };
        (form.finish(), authorization)
    };
    let answer = provider
        .client
        .post_form(&provider.token_endpoint, form, authorization)
        .await
        .map_err(|e| GatewayError::ProviderUnavailable(format!("token endpoint: {e}")))?;
    match answer.status {
        StatusCode::OK => serde_json::from_slice(&answer.body).map_err(|_| {
            GatewayError::ProviderUnavailable("token endpoint: no id_token in its answer".into())
        }),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
            tracing::info!(status = %answer.status, "the provider refused the code");
            Err(GatewayError::LoginRefused("code_refused"))
        }
        other => Err(GatewayError::ProviderUnavailable(format!(
            "token endpoint answered {other}"
        ))),
    }
}

/// OpenID Connect Core 3.1.3.7: with several audiences `azp` must be there, and when it is
/// there it must be this client.
fn check_azp(claims: &Map<String, Value>, client_id: &str) -> Result<(), GatewayError> {
    let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        None if !several => Ok(()),
        _ => Err(GatewayError::LoginRefused("azp_mismatch")),
    }
}

/// The userinfo claims, when the provider has the endpoint (else none).
async fn userinfo(
    provider: &Provider,
    tokens: &TokenAnswer,
    sub: &str,
) -> Result<Map<String, Value>, GatewayError> {
    let (Some(url), Some(access)) = (&provider.userinfo_endpoint, &tokens.access_token) else {
        return Ok(Map::new());
    };
    let body = provider
        .client
        .get_json(url, Some(access))
        .await
        .map_err(|e| GatewayError::ProviderUnavailable(format!("userinfo: {e}")))?;
    let info: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|_| GatewayError::ProviderUnavailable("userinfo: not a JSON object".into()))?;
    // Core 5.3.2: the userinfo `sub` must be the ID token's, or the answer is not used.
    if info.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err(GatewayError::LoginRefused("userinfo_sub_mismatch"));
    }
    Ok(info)
}

/// The provider's roles: an array of strings or one space/comma separated string. Groups
/// such as "Domain Users" cannot travel in a comma-joined header or a role list: those are
/// left out (logged), the rest kept.
fn lenient_roles(value: &Value) -> Vec<String> {
    let items: Vec<&str> = match value {
        Value::String(s) => s.split([' ', ',']).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut roles = Vec::new();
    for item in items.into_iter().filter(|r| !r.is_empty()) {
        match claims::roles(Some(&Value::String(item.to_owned()))) {
            Ok(r) if r.len() == 1 && r[0] == item => {
                if roles.len() < MAX_ROLES && !roles.iter().any(|x| x == item) {
                    roles.push(item.to_owned());
                }
            }
            _ => tracing::debug!(role = %truncate_for_log(item), "provider role left out"),
        }
    }
    roles
}

/// A path on this gateway to go back to: starts with one '/', no backslash, no control
/// characters, a valid path and query. Anything else (an absolute URL, `//host`, `/\host`)
/// goes to `/`.
fn same_origin_path(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= MAX_RETURN_TO
                && !p.chars().any(char::is_control)
                && p.parse::<http::uri::PathAndQuery>().is_ok() =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The query's pairs, decoded.
fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, GatewayError> {
    Ok(form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect())
}

/// The value of `name` when the query has it once; twice is refused.
fn one<'q>(query: &'q [(String, String)], name: &str) -> Result<Option<&'q str>, GatewayError> {
    let mut found = query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(GatewayError::LoginRefused("repeated_parameter")),
    }
}

fn truncate_for_log(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

/// 200: a page that moves to `to` itself (see the module docs), with no referrer (the code
/// is in this page's URL) and nothing else allowed.
fn signed_in_page(to: &str) -> Response<Body> {
    let to = html_escape(to);
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={to}\"><title>Signed in</title></head>\
         <body><p>Signed in. <a href=\"{to}\">Continue</a>.</p></body></html>"
    );
    let mut resp = Response::new(body::full(page));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    resp
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn return_to_stays_on_this_gateway() {
        for (given, kept) in [
            (Some("/app"), "/app"),
            (Some("/app?x=1&y=%2F"), "/app?x=1&y=%2F"),
            (Some("https://evil.example/"), "/"),
            (Some("//evil.example/"), "/"),
            (Some("/\\evil.example/"), "/"),
            (Some("/\tx"), "/"),
            (Some("app"), "/"),
            (None, "/"),
        ] {
            assert_eq!(same_origin_path(given), kept, "{given:?}");
        }
    }

    #[test]
    fn provider_roles_keep_what_can_travel() {
        assert_eq!(
            lenient_roles(&json!(["admin", "Domain Users", "ops", "admin"])),
            ["admin", "ops"]
        );
        assert_eq!(lenient_roles(&json!("a b,c")), ["a", "b", "c"]);
        assert!(lenient_roles(&json!(7)).is_empty());
    }

    #[test]
    fn azp_rules() {
        let c = |v: Value| v.as_object().unwrap().clone();
        assert!(check_azp(&c(json!({"aud": "gw"})), "gw").is_ok());
        assert!(check_azp(&c(json!({"aud": ["gw", "x"]})), "gw").is_err());
        assert!(check_azp(&c(json!({"aud": ["gw", "x"], "azp": "gw"})), "gw").is_ok());
        assert!(check_azp(&c(json!({"aud": "gw", "azp": "x"})), "gw").is_err());
    }

    #[test]
    fn parameters_once() {
        let q = query_pairs(Some("state=a&code=b&state=c")).unwrap();
        assert!(one(&q, "state").is_err());
        assert_eq!(one(&q, "code").unwrap(), Some("b"));
        assert_eq!(one(&q, "x").unwrap(), None);
        assert_eq!(html_escape("/a\"<"), "/a&quot;&lt;");
    }
}
