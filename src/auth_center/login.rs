//! `POST {auth.path}/login`: username and password -> a session, an access token and a
//! refresh token. The attempt is counted first, atomically with the limit check (429 while
//! locked, whatever the password; see `lockout.rs`); the user is looked up by the
//! NFKC-casefolded username; an unknown user costs one argon2 run like a wrong password and
//! gets the same 401.

use std::net::SocketAddr;

use http::header::USER_AGENT;
use http::{Request, Response};
use serde::Deserialize;

use super::lockout::Attempt;
use super::Deps;
use super::{client_ip, read_json, tokens, users, AuthCenter};
use crate::auth::session::NewSession;
use crate::config::BindRefresh;
use crate::error::GatewayError;
use crate::http::body::{Body, Inbound};

/// Longest `device_id` and `User-Agent` kept with a session.
pub(super) const MAX_DEVICE_ID: usize = 128;
const MAX_USER_AGENT: usize = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    device_id: Option<String>,
}

pub(super) async fn login(
    center: &AuthCenter,
    gw: &Deps,
    peer: SocketAddr,
    req: Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let user_agent = user_agent(req.headers());
    let body: LoginRequest = read_json(gw, req, false).await?;
    let device_id = bound_device(center, device_id(body.device_id)?);
    if body.password.len() > users::MAX_PASSWORD_BYTES {
        return Err(GatewayError::BadRequest("password_too_long"));
    }
    let store = gw.auth.store();
    let ip = client_ip(peer);
    let folded = users::fold_username(&body.username);
    let attempt = Attempt::new(folded.as_deref(), &super::lockout_address(peer));
    // Counted before the password is checked, in one atomic step with the limit check.
    attempt.count(store).await?;

    let user = match &folded {
        Some(name) => store.get_user(name).await?,
        None => None,
    };
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let matched = match center.hasher.verify(body.password, phc).await {
        Ok(matched) => matched,
        Err(e) => {
            // Never checked (the hasher is overloaded): not a wrong password.
            attempt.take_back(store).await?;
            return Err(e);
        }
    };
    let user = match user {
        Some(user) if matched => user,
        _ => {
            tracing::info!(username_valid = folded.is_some(), peer = %ip, "login failed");
            return Err(GatewayError::InvalidCredentials);
        }
    };
    attempt.take_back(store).await?;

    let login = Login {
        sid: tokens::new_session_id(),
        user_id: &user.user_id,
        roles: &user.roles,
        claims: Vec::new(),
        ip,
        user_agent,
        device_id,
    };
    let opened = open_session(center, gw, login).await?;
    tracing::info!(user_id = %user.user_id, session_id = %opened.sid, "login");
    Ok(center.pair_answer(
        &opened.access,
        &opened.refresh,
        &opened.sid,
        opened.ttl,
        opened.device_id.as_deref(),
    ))
}

/// A new login session: its id, tokens and lifetime.
pub(super) struct Opened {
    pub sid: String,
    pub access: String,
    pub refresh: String,
    pub ttl: std::time::Duration,
    pub device_id: Option<String>,
}

/// Who a new session is for, and what it keeps.
pub(super) struct Login<'a> {
    /// The new session's id ([`tokens::new_session_id`]), made by the caller so that what
    /// must point at the session can be written before it.
    pub sid: String,
    pub user_id: &'a str,
    pub roles: &'a [String],
    /// Claims routes pass upstream (an OpenID login's `email`...), kept in the session.
    pub claims: Vec<(String, String)>,
    pub ip: String,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
}

/// Writes a new session (and its first refresh record) and mints its access token: what a
/// password login and an OpenID login both end in.
pub(super) async fn open_session(
    center: &AuthCenter,
    gw: &Deps,
    login: Login<'_>,
) -> Result<Opened, GatewayError> {
    let sid = login.sid;
    let (refresh, refresh_hash) = tokens::new_refresh_token(Some(&sid));
    let device_id = login.device_id;
    let new = NewSession {
        sid: sid.clone(),
        user_id: login.user_id.to_owned(),
        roles: Some(login.roles.to_vec()),
        created_at: crate::clock::unix_now(),
        ip: Some(login.ip),
        user_agent: login.user_agent,
        device_id: device_id.clone(),
        claims: login.claims,
    };
    let ttl = center.cfg.refresh_ttl;
    gw.auth.store().begin(&new, &refresh_hash, ttl).await?;
    let access = center.mint(login.user_id, &sid, login.roles)?;
    Ok(Opened {
        sid,
        access,
        refresh,
        ttl,
        device_id,
    })
}

/// The request's `User-Agent`, cut to 512 bytes, as a session keeps it.
pub(super) fn user_agent(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate(ua, MAX_USER_AGENT).to_owned())
        .filter(|ua| !ua.is_empty())
}

/// An optional `device_id`: non-empty, at most 128 bytes, no control characters.
pub(super) fn device_id(d: Option<String>) -> Result<Option<String>, GatewayError> {
    match d {
        None => Ok(None),
        Some(d) if d.is_empty() => Ok(None),
        Some(d) if d.len() > MAX_DEVICE_ID || d.chars().any(char::is_control) => {
            Err(GatewayError::BadRequest("bad_device_id"))
        }
        Some(d) => Ok(Some(d)),
    }
}

/// With `bind_refresh = "device"`, a login that names no device is bound to one the gateway
/// generates (and hands back), so its refresh token is never unbound.
pub(super) fn bound_device(center: &AuthCenter, given: Option<String>) -> Option<String> {
    match (given, center.cfg.bind_refresh) {
        (None, BindRefresh::Device) => Some(tokens::new_device_id()),
        (given, _) => given,
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert_eq!(device_id(None).unwrap(), None);
        assert_eq!(device_id(Some(String::new())).unwrap(), None);
        assert_eq!(device_id(Some("d1".into())).unwrap().as_deref(), Some("d1"));
        assert!(device_id(Some("a\nb".into())).is_err());
        assert!(device_id(Some("x".repeat(129))).is_err());
    }

    #[test]
    fn truncate_keeps_characters_whole() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<LoginRequest, _> =
            serde_json::from_str(r#"{"username":"a","password":"b","admin":true}"#);
        assert!(r.err().unwrap().to_string().starts_with("unknown field"));
    }
}
