//! Session administration on the admin listener, so that the memory store can be driven from
//! outside the process (`gateway token` uses it) and operators can revoke a session by id.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::auth::session::{NewSession, StoreError};
use crate::body::{self, Body};
use crate::gateway::Gateway;
use crate::plain::{json, read_json};

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

pub async fn create(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    let body: CreateSession = match read_json(req, 16 * 1024).await {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, "bad_request", &msg),
    };
    if body.session_id.is_empty() || body.user_id.is_empty() || body.ttl == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "session_id, user_id and a ttl above zero are required",
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
    match gw
        .auth
        .store()
        .create(&new, Duration::from_secs(body.ttl))
        .await
    {
        Ok(()) => {
            let mut r = Response::new(body::full(Bytes::from(
                serde_json::json!({ "session_id": body.session_id }).to_string(),
            )));
            *r.status_mut() = StatusCode::CREATED;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(StoreError::Invalid(msg)) => error(StatusCode::BAD_REQUEST, "bad_request", &msg),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_store_unavailable",
            &e.to_string(),
        ),
    }
}

pub async fn delete(gw: &Gateway, sid: &str) -> Response<Body> {
    match gw.auth.store().delete(sid).await {
        Ok(true) => {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(false) => json(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","message":"no such session"}"#,
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "session_store_unavailable",
            &e.to_string(),
        ),
    }
}

/// Seconds since the epoch (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
