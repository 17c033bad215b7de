//! Session administration on the admin listener, so that the memory store can be driven from
//! outside the process (`gateway token` uses it) and operators can revoke a session by id.
//!
//! These endpoints write sessions and roles, so they are a control plane: they exist only with
//! `[admin]`, and every request needs `Authorization: Bearer <admin token>`, compared in
//! constant time. Listening on loopback is no defence against SSRF from a backend or a
//! neighbour, hence a secret even there. Store failures are logged, never echoed.

use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::{read_json, Admin};
use crate::auth::session::{NewSession, StoreError};
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};

/// `POST /sessions` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub session_id: String,
    pub user_id: String,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Seconds.
    pub ttl: u64,
}

/// Whether `path` is one of the session endpoints (which need `[admin]` and its token).
pub fn is_session_path(path: &str) -> bool {
    path == "/sessions" || path.starts_with("/sessions/")
}

/// Every request to a session path: 404 without `[admin]`, 401 without the right token, then
/// `POST /sessions`, `GET /sessions/{sid}` or `DELETE /sessions/{sid}` (another method: 405).
pub(super) async fn handle(
    gw: &Admin,
    req: Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let Some(admin) = &gw.config else {
        return Err(GatewayError::NoRoute);
    };
    authorize(admin, &req).map_err(|denial| match denial {
        Denial::Missing => GatewayError::MissingToken,
        Denial::Invalid => GatewayError::InvalidToken("admin_token"),
    })?;
    let path = req.uri().path().to_owned();
    match (req.method(), path.strip_prefix("/sessions")) {
        (&Method::POST, Some("")) => create(gw, req).await,
        (_, Some("")) => Err(not_allowed("POST")),
        (method, Some(rest)) => match rest.strip_prefix('/') {
            Some(sid) if !sid.is_empty() && !sid.contains('/') => match *method {
                Method::GET => read(gw, sid).await,
                Method::DELETE => delete(gw, sid).await,
                _ => Err(not_allowed("GET, DELETE")),
            },
            _ => Err(GatewayError::NoRoute),
        },
        _ => Err(GatewayError::NoRoute),
    }
}

/// Why a session-endpoint call was refused (both are 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denial {
    /// No single Bearer credential came.
    Missing,
    /// One came, and it is not the admin token.
    Invalid,
}

/// One `Authorization: Bearer <token>` header (scheme in any case) naming the admin token.
fn authorize(admin: &crate::config::Admin, req: &Request<Inbound>) -> Result<(), Denial> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        tracing::warn!(path = %req.uri().path(), "admin request without a single Authorization header");
        return Err(Denial::Missing);
    };
    let presented = value
        .as_bytes()
        .split_first_chunk::<7>()
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, rest)| rest.trim_ascii());
    let Some(presented) = presented else {
        tracing::warn!(path = %req.uri().path(), "admin request without a bearer token");
        return Err(Denial::Missing);
    };
    match &admin.token {
        Some(token) if token.matches(presented) => Ok(()),
        Some(_) => {
            tracing::warn!(path = %req.uri().path(), "admin request with a wrong token");
            Err(Denial::Invalid)
        }
        None => {
            tracing::error!(
                "the admin token file is missing; session endpoints refuse every request until it exists and the config is reloaded"
            );
            Err(Denial::Invalid)
        }
    }
}

async fn create(gw: &Admin, req: Request<Inbound>) -> Result<Response<Body>, GatewayError> {
    let body: CreateSession = read_json(req, 16 * 1024).await?;
    let bad_role = body
        .roles
        .iter()
        .flatten()
        .any(|r| r.contains(',') || r.trim().is_empty());
    // A session id the URL path of `DELETE /sessions/{sid}` can carry as it is, so that every
    // session created here can also be revoked here.
    let bad_sid = body.session_id.len() > 128
        || body.session_id == "."
        || body.session_id == ".."
        || !body
            .session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(&b));
    // What becomes a header value later (X-User-Id, X-User-Roles) is checked now, not when a
    // request finds it unusable.
    let control = |s: &str| s.chars().any(char::is_control);
    let bad_text = control(&body.user_id) || body.roles.iter().flatten().any(|r| control(r));
    if body.session_id.is_empty()
        || bad_sid
        || bad_text
        || body.user_id.is_empty()
        || body.ttl == 0
        || bad_role
    {
        // session_id: 1 to 128 of A-Z a-z 0-9 - . _ ~ :, not . or ..; user_id and a ttl above
        // zero required; roles non-empty, without commas; no control characters.
        return Err(GatewayError::BadRequest("invalid_session"));
    }
    let new = NewSession {
        sid: body.session_id.clone(),
        user_id: body.user_id.clone(),
        roles: body.roles.clone(),
        created_at: crate::clock::unix_now(),
        ip: None,
        user_agent: None,
        device_id: None,
        claims: Vec::new(),
    };
    let created = gw
        .auth
        .store()
        .create_if_absent(&new, Duration::from_secs(body.ttl))
        .await
        .map_err(store_failed)?;
    if !created {
        return Err(GatewayError::SessionExists);
    }
    tracing::info!(sid = %body.session_id, user_id = %body.user_id, "session created by the admin API");
    Ok(body::json(
        StatusCode::CREATED,
        &serde_json::json!({ "session_id": body.session_id }),
    ))
}

/// `GET /sessions/{sid}`: whose session it is and its roles (`null`: the token's apply).
async fn read(gw: &Admin, sid: &str) -> Result<Response<Body>, GatewayError> {
    let record = gw
        .auth
        .store()
        .get(sid)
        .await
        .map_err(store_failed)?
        .ok_or(GatewayError::NoSuchSession)?;
    Ok(body::json(
        StatusCode::OK,
        &serde_json::json!({
            "session_id": sid,
            "user_id": record.user_id,
            "roles": record.roles,
            "created_at": record.created_at,
        }),
    ))
}

async fn delete(gw: &Admin, sid: &str) -> Result<Response<Body>, GatewayError> {
    if !gw.auth.store().delete(sid).await.map_err(store_failed)? {
        return Err(GatewayError::NoSuchSession);
    }
    tracing::info!(sid, "session deleted by the admin API");
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// The detail goes to the log; the caller learns only that the store did not take it.
fn store_failed(e: StoreError) -> GatewayError {
    tracing::warn!(error = %e, "admin API: session store call failed");
    match e {
        StoreError::Invalid(_) => GatewayError::BadRequest("session_not_storable"),
        e => GatewayError::StoreUnavailable(e),
    }
}

fn not_allowed(allow: &'static str) -> GatewayError {
    GatewayError::MethodNotAllowed {
        allow: Some(HeaderValue::from_static(allow)),
    }
}
