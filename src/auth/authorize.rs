//! The one access policy: what a request for a route needs, by the route's auth mode and
//! roles. The proxy (before forwarding) and forward-auth (`/verify`, for nginx or Traefik)
//! both call [`authorize`], so the two can never disagree about who may pass.

use http::HeaderMap;

use super::{AuthError, Authenticated, Authenticator};
use crate::config::{AuthMode, Route};

/// Whose identity goes upstream for `route`: `None` on a public route (whatever the request
/// carries), and on an optional route without a token; otherwise the session, which must
/// hold one of the route's roles ([`AuthError::Forbidden`] when it holds none).
pub async fn authorize(
    auth: &Authenticator,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, AuthError> {
    if route.auth == AuthMode::Public {
        return Ok(None);
    }
    let who = match auth.authenticate(headers, &route.issuers).await {
        Ok(Some(who)) => who,
        Ok(None) | Err(AuthError::Missing) if route.auth == AuthMode::Optional => return Ok(None),
        Ok(None) => return Err(AuthError::Missing),
        Err(e) => return Err(e),
    };
    if !who.has_any_role(&route.roles) {
        return Err(AuthError::Forbidden {
            user_id: who.user_id().to_owned(),
        });
    }
    Ok(Some(who))
}

/// The caller of an endpoint that needs a live session and no particular role (the auth
/// center's session endpoints, `/verify` without an original request): the gateway's own
/// tokens only, whose sessions the auth center manages.
pub async fn signed_in(
    auth: &Authenticator,
    headers: &HeaderMap,
) -> Result<Authenticated, AuthError> {
    auth.authenticate(headers, super::OWN_ONLY)
        .await?
        .ok_or(AuthError::Missing)
}
