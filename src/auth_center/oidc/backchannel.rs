//! `POST {auth.path}/oidc/backchannel-logout` (OpenID Back-Channel Logout 1.0): the provider
//! says a user's provider session ended; the gateway sessions it began end too, on every
//! instance (the session keys are deleted; other instances' caches hear it from Redis).
//!
//! A logout token is accepted only when it is signed by the provider's key and names it
//! (`iss`) and this client (`aud`), is within its `exp`, carries the back-channel logout
//! event in `events`, `iat`, a `jti` not seen before, and `sid` or `sub`, and has no `nonce`
//! (so an ID token can never pass for one), issued at most ten minutes ago. Anything else is 400 and revokes nothing. With
//! `sid`, the sessions that provider session began are ended (only `sub`'s, when it names
//! one too); with `sub` alone, every session of `<name>:<sub>`.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::super::{read_body, Deps};
use super::Provider;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};

/// The event a logout token carries (section 2.4).
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token issued longer ago than this (seconds, plus the leeway) is refused; its
/// `jti` is remembered at least this long, and until the token's `exp`.
const MAX_AGE: u64 = 600;
/// ... and never longer than this.
const MAX_JTI_MEMORY: u64 = 24 * 3600;

pub(in crate::auth_center) async fn backchannel_logout(
    provider: &Provider,
    gw: &Deps,
    req: Request<Inbound>,
) -> Result<Response<Body>, GatewayError> {
    let refused = GatewayError::LogoutTokenRefused;
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(refused("not_a_form"));
    }
    let bytes = read_body(gw, req).await?;
    let mut tokens = form_urlencoded::parse(&bytes).filter(|(k, _)| k == "logout_token");
    let token = match (tokens.next(), tokens.next()) {
        (Some((_, t)), None) => t.into_owned(),
        _ => return Err(refused("no_logout_token")),
    };
    let claims = provider
        .verifier
        .verify_claims(&token, &["logout+jwt", "JWT"])
        .await
        .map_err(|e| {
            tracing::info!(reason = e.reason(), "logout token refused");
            refused("logout_token_invalid")
        })?;
    let facts = check(&claims)?;
    // Fresh only: a token issued longer ago than its `jti` is remembered could be replayed.
    let now = crate::clock::unix_now();
    let leeway = provider.cfg.leeway.as_secs();
    let iat = claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
    if iat.saturating_add(MAX_AGE).saturating_add(leeway) < now || iat > now.saturating_add(leeway)
    {
        return Err(refused("iat_not_fresh"));
    }

    let store = gw.auth.store();
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
    // At least as long as a token counts as fresh, and until it expires.
    let memory = exp
        .saturating_sub(now)
        .max(MAX_AGE)
        .saturating_add(2 * leeway)
        .min(MAX_JTI_MEMORY);
    let jti = format!("{}:{}", provider.cfg.name, facts.jti);
    if !store
        .oidc_first_jti(&jti, std::time::Duration::from_secs(memory))
        .await?
    {
        return Err(refused("jti_replayed"));
    }

    let user = facts.sub.map(|sub| provider.user_id(sub));
    let ended = match end_sessions(provider, gw, facts.sid, user.as_deref()).await {
        Ok(n) => n,
        Err(e) => {
            // Not carried out: the provider's retry of this same token must be accepted.
            if let Err(forget) = store.oidc_forget_jti(&jti).await {
                tracing::warn!(error = %forget, "cannot forget a logout token's jti");
            }
            return Err(e.into());
        }
    };
    tracing::info!(provider = %provider.cfg.name, sessions = ended, "back-channel logout");
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Ends the sessions the token names: those provider session `sid` began (only `user`'s
/// when it names one), else every session of `user`. Returns how many ended.
async fn end_sessions(
    provider: &Provider,
    gw: &Deps,
    sid: Option<&str>,
    user: Option<&str>,
) -> Result<u64, crate::auth::session::StoreError> {
    let store = gw.auth.store();
    let Some(sid) = sid else {
        // `check` made sure there is a `sub` when there is no `sid`.
        let user = user.unwrap_or_default();
        let known = store.list_for_user(user).await?;
        let n = store.delete_for_user(user).await?;
        for (sid, _) in &known {
            gw.auth.forget_session(sid);
        }
        return Ok(n);
    };
    let prefix = format!("{}:", provider.cfg.name);
    let mut n = 0;
    for gw_sid in store.oidc_linked(&provider.provider_session(sid)).await? {
        let owner = store.get(&gw_sid).await?.map(|r| r.user_id);
        let ours = match (&owner, user) {
            (Some(o), Some(u)) => o == u,
            (Some(o), None) => o.starts_with(&prefix),
            (None, _) => false,
        };
        if ours && store.delete(&gw_sid).await? {
            n += 1;
        }
        gw.auth.forget_session(&gw_sid);
    }
    Ok(n)
}

/// What a valid logout token names.
#[derive(Debug, PartialEq, Eq)]
struct Facts<'c> {
    jti: &'c str,
    sid: Option<&'c str>,
    sub: Option<&'c str>,
}

/// Section 2.6's checks after the signature and the registered claims.
fn check(claims: &Map<String, Value>) -> Result<Facts<'_>, GatewayError> {
    let refused = GatewayError::LogoutTokenRefused;
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT));
    if !matches!(event, Some(Value::Object(_))) {
        return Err(refused("no_logout_event"));
    }
    if claims.contains_key("nonce") {
        return Err(refused("nonce_present"));
    }
    if !claims.get("iat").is_some_and(Value::is_u64) {
        return Err(refused("no_iat"));
    }
    let text = |name: &str| -> Result<Option<&str>, GatewayError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 512 => Ok(Some(s)),
            Some(_) => Err(refused("bad_claim")),
        }
    };
    let jti = text("jti")?.ok_or(refused("no_jti"))?;
    let (sid, sub) = (text("sid")?, text("sub")?);
    if sid.is_none() && sub.is_none() {
        return Err(refused("no_sid_or_sub"));
    }
    Ok(Facts { jti, sid, sub })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Value {
        json!({"iat": 1, "jti": "j1", "sid": "s1", "events": {EVENT: {}}})
    }

    #[test]
    fn logout_token_rules() {
        let c = claims(good());
        assert_eq!(
            check(&c).unwrap(),
            Facts {
                jti: "j1",
                sid: Some("s1"),
                sub: None
            }
        );
        let bad = |edit: &dyn Fn(&mut Value)| {
            let mut v = good();
            edit(&mut v);
            check(&claims(v)).is_err()
        };
        assert!(bad(&|v| v["nonce"] = json!("n")));
        assert!(bad(&|v| v["events"] = json!({})));
        assert!(bad(&|v| v["events"] = json!({EVENT: "x"})));
        assert!(bad(&|v| {
            v.as_object_mut().unwrap().remove("jti");
        }));
        assert!(bad(&|v| {
            v.as_object_mut().unwrap().remove("sid");
        }));
        assert!(bad(&|v| {
            v.as_object_mut().unwrap().remove("iat");
        }));
        assert!(bad(&|v| v["sid"] = json!(5)));
        assert!(!bad(&|v| {
            v.as_object_mut().unwrap().remove("sid");
            v["sub"] = json!("u");
        }));
    }
}
