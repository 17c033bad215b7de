//! Session administration on the admin listener, so that the memory store can be driven from
//! outside the process (`gateway token` uses it) and operators can revoke a session by id.
//!
//! These endpoints write sessions and roles, so they are a control plane: they exist only with
//! `[admin]`, and every request needs `Authorization: Bearer <admin token>`, compared in
//! constant time. Listening on loopback is no defence against SSRF from a backend or a
//! neighbour, hence a secret even there. Store failures are logged, never echoed.

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::session::{NewSession, StoreError};
use crate::http::body::{self, Body, Inbound};
use crate::app::Gateway;
use crate::listen::plain::{json, read_json};

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
pub async fn handle(gw: &Gateway, req: Request<Inbound>) -> Response<Body> {
    let Some(admin) = &gw.config.admin else {
        return not_found();
    };
    if let Err(denial) = authorize(admin, &req) {
        return unauthorized(denial);
    }
    let path = req.uri().path().to_owned();
    match (req.method(), path.strip_prefix("/sessions")) {
        (&Method::POST, Some("")) => create(gw, req).await,
        (_, Some("")) => not_allowed("POST"),
        (method, Some(rest)) => match rest.strip_prefix('/') {
            Some(sid) if !sid.is_empty() && !sid.contains('/') => match *method {
                Method::GET => read(gw, sid).await,
                Method::DELETE => delete(gw, sid).await,
                _ => not_allowed("GET, DELETE"),
            },
            _ => not_found(),
        },
        _ => not_found(),
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

async fn create(gw: &Gateway, req: Request<Inbound>) -> Response<Body> {
    let body: CreateSession = match read_json(req, 16 * 1024).await {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, "bad_request", &msg),
    };
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
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "session_id (1 to 128 of A-Z a-z 0-9 - . _ ~ :, not . or ..), user_id and a ttl above zero are required; roles are non-empty, without commas; no control characters",
        );
    }
    let new = NewSession {
        sid: body.session_id.clone(),
        user_id: body.user_id.clone(),
        roles: body.roles.clone(),
        created_at: unix_now(),
        ip: None,
        user_agent: None,
        device_id: None,
    };
    let created = gw
        .auth
        .store()
        .create_if_absent(&new, Duration::from_secs(body.ttl))
        .await;
    match created {
        Ok(true) => {
            tracing::info!(sid = %body.session_id, user_id = %body.user_id, "session created by the admin API");
            let mut r = Response::new(body::full(Bytes::from(
                serde_json::json!({ "session_id": body.session_id }).to_string(),
            )));
            *r.status_mut() = StatusCode::CREATED;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Ok(false) => json(
            StatusCode::CONFLICT,
            r#"{"error":"conflict","message":"a session with this id exists; nothing was changed"}"#,
        ),
        Err(e) => store_failed(&e),
    }
}

/// `GET /sessions/{sid}`: whose session it is and its roles (`null`: the token's apply).
async fn read(gw: &Gateway, sid: &str) -> Response<Body> {
    match gw.auth.store().get(sid).await {
        Ok(Some(record)) => {
            let mut r = Response::new(body::full(Bytes::from(
                serde_json::json!({
                    "session_id": sid,
                    "user_id": record.user_id,
                    "roles": record.roles,
                    "created_at": record.created_at,
                })
                .to_string(),
            )));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Ok(None) => json(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","message":"no such session"}"#,
        ),
        Err(e) => store_failed(&e),
    }
}

async fn delete(gw: &Gateway, sid: &str) -> Response<Body> {
    match gw.auth.store().delete(sid).await {
        Ok(true) => {
            tracing::info!(sid, "session deleted by the admin API");
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(false) => json(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","message":"no such session"}"#,
        ),
        Err(e) => store_failed(&e),
    }
}

/// The detail goes to the log; the caller learns only that the store did not take it.
fn store_failed(e: &StoreError) -> Response<Body> {
    tracing::warn!(error = %e, "admin API: session store call failed");
    if let StoreError::Invalid(_) = e {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"bad_request","message":"the session cannot be stored as given"}"#,
        );
    }
    let mut r = json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"error":"session_store_unavailable","message":"the session store did not answer; try again"}"#,
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Seconds since the epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        r#"{"error":"not_found","message":"no such admin endpoint"}"#,
    )
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"error":"method_not_allowed","message":"method not allowed"}"#,
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// 401 with a Bearer challenge.
fn unauthorized(denial: Denial) -> Response<Body> {
    let (body, challenge) = if denial == Denial::Invalid {
        (
            r#"{"error":"invalid_token","message":"the admin token is not valid"}"#,
            r#"Bearer realm="gateway-admin", error="invalid_token""#,
        )
    } else {
        (
            r#"{"error":"missing_token","message":"this endpoint needs Authorization: Bearer <admin token>"}"#,
            r#"Bearer realm="gateway-admin""#,
        )
    };
    let mut r = json(StatusCode::UNAUTHORIZED, body);
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let mut r = Response::new(body::full(Bytes::from(
        serde_json::json!({ "error": code, "message": message }).to_string(),
    )));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
