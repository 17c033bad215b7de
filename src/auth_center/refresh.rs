//! `POST {auth.path}/refresh`: a refresh token (in the body or the refresh cookie) -> a new
//! pair. Rotation, the use count, the binding and reuse detection are one atomic store
//! operation (`SessionStore::rotate`), so two refreshes racing with one token give exactly one
//! new pair, and a used token shown again revokes the whole session, unless `refresh_grace`
//! is set and the replay comes within it from the same device (then: the same successor).
//! The device is the body's `device_id`, else the device cookie. A session revoked here is
//! dropped from this instance's session cache at once.

use std::net::SocketAddr;

use http::{Request, Response};
use serde::Deserialize;

use super::Deps;
use super::{client_ip, cookies, read_json, tokens, AuthCenter};
use crate::auth::session::{Binding, RefreshOutcome, Rotation};
use crate::config::BindRefresh;
use crate::error::GatewayError;
use crate::http::body::{Body, Inbound};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
}

pub(super) async fn refresh(
    center: &AuthCenter,
    gw: &Deps,
    peer: SocketAddr,
    req: Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let from_cookie = cookies::refresh_from(req.headers())
        .map_err(|()| GatewayError::InvalidRefreshToken("ambiguous_cookie"))?;
    let device_cookie = cookies::device_from(req.headers())
        .map_err(|()| GatewayError::InvalidRefreshToken("bad_device_cookie"))?;
    let body: RefreshRequest = read_json(gw, req, true).await?;
    let device_id = match super::login::device_id(body.device_id)? {
        Some(d) => d,
        None => super::login::device_id(device_cookie)
            .map_err(|_| GatewayError::InvalidRefreshToken("bad_device_cookie"))?
            .unwrap_or_default(),
    };
    let presented = match (body.refresh_token, from_cookie) {
        (Some(b), Some(c)) if b != c => {
            return Err(GatewayError::InvalidRefreshToken("ambiguous_token"))
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => return Err(GatewayError::InvalidRefreshToken("missing")),
    };
    if !tokens::plausible_refresh_token(&presented) {
        return Err(GatewayError::InvalidRefreshToken("malformed"));
    }
    let ip = client_ip(peer);
    let old_hash = tokens::refresh_hash(&presented);
    let named_sid = tokens::refresh_sid(&presented);
    let (refresh, new_hash) = tokens::new_refresh_token(named_sid);
    let grace = center.cfg.refresh_grace;
    // Sealed even without a grace: a rotation that a replica does not confirm keeps it for
    // the client's retry (see the store's rotation).
    let sealed = tokens::seal(&presented, &refresh)
        .ok_or_else(|| GatewayError::Internal("seal: not a refresh token".into()))?;
    let binding = match center.cfg.bind_refresh {
        BindRefresh::None => Binding::None,
        BindRefresh::Device => Binding::Device(&device_id),
        BindRefresh::Ip => Binding::Ip(&ip),
    };
    let rotation = Rotation {
        sid: named_sid,
        old_hash: &old_hash,
        new_hash: &new_hash,
        binding,
        max_uses: u64::from(center.cfg.refresh_max_uses),
        fallback_ttl: center.cfg.refresh_ttl,
        grace,
        sealed_successor: &sealed,
        device: &device_id,
    };
    match gw.auth.store().rotate(&rotation).await? {
        RefreshOutcome::Rotated {
            sid,
            user_id,
            roles,
            remaining,
            ..
        } => {
            // A session without a `roles` field (written by another service) gets a token
            // without roles; the session record stays the authority on every request.
            let roles = roles.unwrap_or_default();
            let access = center.mint(&user_id, &sid, &roles)?;
            Ok(center.pair_answer(&access, &refresh, &sid, remaining, None))
        }
        RefreshOutcome::Again {
            sid,
            user_id,
            roles,
            remaining,
            sealed,
        } => {
            // Within the grace: the successor the first refresh got, and a fresh access token
            // of the same session (access tokens are not kept anywhere).
            let successor = tokens::unseal(&presented, &sealed)
                .ok_or_else(|| GatewayError::Internal("unseal: bad grace record".into()))?;
            let roles = roles.unwrap_or_default();
            let access = center.mint(&user_id, &sid, &roles)?;
            tracing::debug!(session_id = %sid, "refresh replayed within the grace");
            Ok(center.pair_answer(&access, &successor, &sid, remaining, None))
        }
        RefreshOutcome::Unknown => Err(GatewayError::InvalidRefreshToken("unknown")),
        RefreshOutcome::Reused { sid } => {
            // Refused on this instance's very next request, before Redis' push arrives.
            gw.auth.forget_session(&sid);
            tracing::warn!(peer = %ip, "refresh token reused: its session is revoked");
            Err(GatewayError::InvalidRefreshToken("reused"))
        }
        RefreshOutcome::SessionGone => Err(GatewayError::InvalidRefreshToken("session_ended")),
        RefreshOutcome::Exhausted => Err(GatewayError::InvalidRefreshToken("max_uses")),
        RefreshOutcome::BindingMismatch { sid } => {
            gw.auth.forget_session(&sid);
            tracing::warn!(peer = %ip, "refresh from another device or address: session revoked");
            Err(GatewayError::InvalidRefreshToken("binding_mismatch"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_fields_are_optional_but_known() {
        let r: RefreshRequest = serde_json::from_str("{}").unwrap();
        assert!(r.refresh_token.is_none() && r.device_id.is_none());
        assert!(serde_json::from_str::<RefreshRequest>(r#"{"x":1}"#).is_err());
    }
}
