//! `GET {auth.path}/verify`: forward-auth for nginx `auth_request` and Traefik ForwardAuth.
//! The original request is read from `X-Forwarded-Method`, `X-Forwarded-Uri` (Traefik) or
//! `X-Original-URI` (nginx) and `X-Forwarded-Host` (else `Host`), and that route's rules are
//! applied: its auth mode, its methods (405) and its roles (403). 200 carries the identity
//! headers for the proxy to copy upstream. Without an original URI, or for a URI no route
//! matches, a valid session is required and no role is.

use http::header::HOST;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};

use super::caller;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::identity_headers::{self, Identity};
use crate::routing;

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(super) async fn verify(
    gw: &Gateway,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response<Body>, GatewayError> {
    let original_method = match one(headers, &X_FORWARDED_METHOD) {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| GatewayError::BadRequest("bad_forwarded_method"))?,
        None => method.clone(),
    };
    let uri = one(headers, &X_FORWARDED_URI).or_else(|| one(headers, &X_ORIGINAL_URI));
    let route = match uri {
        None => None,
        Some(uri) => {
            let raw_path = uri.split(['?', '#']).next().unwrap_or("/");
            let path = crate::path::normalise(raw_path)?;
            let host = one(headers, &X_FORWARDED_HOST)
                .or_else(|| one(headers, &HOST))
                .and_then(routing::host_without_port);
            gw.routes.find(host.as_deref(), &path).cloned()
        }
    };
    let who = match &route {
        Some(route) => {
            if !routing::allows(route, &original_method) {
                return Err(GatewayError::MethodNotAllowed {
                    allow: routing::allow_header(route),
                });
            }
            let who = crate::proxy::authenticate(gw, route, headers).await?;
            if let Some(a) = &who {
                if !a.has_any_role(&route.roles) {
                    return Err(GatewayError::InsufficientRole);
                }
            }
            who
        }
        None => Some(caller(gw, headers).await?),
    };
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    if let Some(a) = who {
        let identity = Identity {
            user_id: a.user_id(),
            roles: a.roles(),
            session_id: a.session_id(),
        };
        identity_headers::set(resp.headers_mut(), &gw.identity, &identity)
            .map_err(|_| GatewayError::InvalidToken("identity_not_a_header_value"))?;
    }
    Ok(resp)
}

/// The header's value when it is there exactly once and is text.
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().ok().map(str::trim).filter(|v| !v.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn one_value_only() {
        let mut h = HeaderMap::new();
        assert_eq!(one(&h, &X_ORIGINAL_URI), None);
        h.append(&X_ORIGINAL_URI, HeaderValue::from_static(" /a "));
        assert_eq!(one(&h, &X_ORIGINAL_URI), Some("/a"));
        h.append(&X_ORIGINAL_URI, HeaderValue::from_static("/b"));
        assert_eq!(one(&h, &X_ORIGINAL_URI), None);
    }
}
