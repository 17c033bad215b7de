//! The caller's own sessions: `POST /logout`, `GET /sessions`, `DELETE /sessions/{sid}` and
//! `DELETE /sessions`. Revocation deletes the session record, so every access token of it gets
//! 401 on its next request on every replica (revocation is by session id, never by token).

use http::header::SET_COOKIE;
use http::{HeaderMap, Response, StatusCode};
use serde_json::json;

use super::Deps;
use super::{caller, json, no_content, AuthCenter};
use crate::error::GatewayError;
use crate::http::body::Body;

/// 204; the caller's session is gone and the cookies are expired.
pub(super) async fn logout(
    center: &AuthCenter,
    gw: &Deps,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let who = caller(gw, headers).await?;
    gw.auth.store().delete(&who.sid).await?;
    // This instance's cache forgets it now; the others through Redis' invalidation push.
    gw.auth.forget_session(&who.sid);
    tracing::info!(user_id = %who.user_id(), session_id = %who.sid, "logout");
    Ok(expire_cookies(center, no_content()))
}

/// 200 with the caller's live sessions, oldest first.
pub(super) async fn list(gw: &Deps, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
    let who = caller(gw, headers).await?;
    let sessions = gw.auth.store().list_for_user(who.user_id()).await?;
    let list: Vec<_> = sessions
        .into_iter()
        .map(|(sid, r)| {
            json!({
                "session_id": sid,
                "created_at": r.created_at,
                "ip": r.ip,
                "user_agent": r.user_agent,
                "device_id": r.device_id,
                "current": sid == who.sid,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::Value::Array(list)))
}

/// 204 when `sid` was one of the caller's sessions and is now gone; 404 when it is not the
/// caller's (another user's looks exactly like one that does not exist).
pub(super) async fn delete_one(
    gw: &Deps,
    headers: &HeaderMap,
    sid: &str,
) -> Result<Response<Body>, GatewayError> {
    let who = caller(gw, headers).await?;
    let store = gw.auth.store();
    match store.get(sid).await? {
        Some(record) if record.user_id == who.user_id() => {
            store.delete(sid).await?;
            gw.auth.forget_session(sid);
            tracing::info!(user_id = %who.user_id(), session_id = %sid, "session signed out");
            Ok(no_content())
        }
        _ => Err(GatewayError::NoSuchSession),
    }
}

/// 204; every session of the caller is gone, this one included.
pub(super) async fn delete_all(
    center: &AuthCenter,
    gw: &Deps,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let who = caller(gw, headers).await?;
    let store = gw.auth.store();
    let known = store.list_for_user(who.user_id()).await?;
    let n = store.delete_for_user(who.user_id()).await?;
    for (sid, _) in &known {
        gw.auth.forget_session(sid);
    }
    tracing::info!(user_id = %who.user_id(), sessions = n, "signed out everywhere");
    Ok(expire_cookies(center, no_content()))
}

fn expire_cookies(center: &AuthCenter, mut resp: Response<Body>) -> Response<Body> {
    for c in center.cookies.expire() {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    resp
}
