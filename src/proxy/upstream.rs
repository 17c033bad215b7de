//! The request as the upstream sees it: the normalised (and maybe stripped) path, the identity
//! headers from the verified session only, `X-Forwarded-*`, `X-Request-Id`, the token and the
//! auth center's device cookie removed (the token kept with `forward_token`), and the body
//! bounded by the route's limit.

use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Request};
use http_body_util::BodyExt;

use super::pipeline::Exchange;
use crate::auth::Authenticated;
use crate::config::Route;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};
use crate::http::{client_addr, request_id};
use crate::identity_headers;
use crate::routing;

/// Where the request goes and on whose behalf.
pub(super) struct Target<'a> {
    pub route: &'a Route,
    /// The request's one valid host, as sent.
    pub host: &'a str,
    /// The normalised path.
    pub path: &'a str,
    pub who: Option<&'a Authenticated>,
}

pub(super) fn request(
    x: &Exchange<'_>,
    t: &Target<'_>,
    req: Request<Inbound>,
) -> Result<Request<Body>, GatewayError> {
    let p = x.proxy;
    let (mut parts, incoming) = req.into_parts();
    let mut target = routing::upstream_path(t.route, t.path);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    parts.uri = target
        .parse()
        .map_err(|_| GatewayError::BadPath(crate::http::path::PathError::InvalidEscape))?;
    let h = &mut parts.headers;
    join_cookies(h);
    if !t.route.forward_token {
        crate::auth::bearer::strip_token(h, p.auth.cookie());
    }
    if p.auth_center.is_some() {
        // The auth center's device cookie is `Path=/` (`__Host-` requires it), so browsers
        // send it everywhere; it is the auth center's business, not a backend's.
        crate::auth::bearer::strip_cookie(h, crate::auth_center::DEVICE_COOKIE);
        // So is a pending OpenID login's id (a backend could spend it).
        crate::auth::bearer::strip_cookie(h, crate::auth_center::LOGIN_COOKIE);
    }
    if let Some(who) = t.who {
        identity_headers::set(h, &p.identity, who)
            .map_err(|_| GatewayError::InvalidToken("identity_not_a_header_value"))?;
        identity_headers::set_claims(h, t.route, who);
        if let Some(asserter) = &p.asserter {
            let value = asserter
                .assertion(who, t.route)
                .map_err(|e| GatewayError::Internal(format!("identity assertion: {e}")))?;
            h.insert(asserter.header().clone(), value);
        }
    }
    let (peer, client) = (x.addrs.peer, x.addrs.client);
    client_addr::set_forwarding_headers(h, peer, client, &p.trusted_proxies, t.host);
    if let Ok(v) = HeaderValue::from_str(t.host) {
        h.insert(HOST, v);
    }
    h.insert(request_id::HEADER.clone(), x.rid.header_value());
    // Request trailers (HTTP/2, chunked HTTP/1.1) are headers too: they get the head's
    // treatment, so an identity or a token cannot ride in them to an h2c backend.
    let identity = p.identity.clone();
    let cookie = (!t.route.forward_token).then(|| p.auth.cookie().map(str::to_owned));
    let body = body::bounded(incoming, p.body_idle_timeout(), t.route.max_body)
        .map_frame(move |frame| match frame.into_trailers() {
            Ok(mut trailers) => {
                crate::http::hop_by_hop::remove(&mut trailers);
                identity_headers::strip_inbound(&mut trailers, &identity);
                trailers.remove(http::header::COOKIE);
                if let Some(cookie) = &cookie {
                    crate::auth::bearer::strip_token(&mut trailers, cookie.as_deref());
                }
                http_body::Frame::trailers(trailers)
            }
            Err(frame) => frame,
        })
        .boxed_unsync();
    Ok(Request::from_parts(parts, body))
}

/// An HTTP/2 client may send `Cookie` as several fields (RFC 9113 8.2.3); they are joined
/// into one, with `"; "`, before the request goes on (to an HTTP/1.1 upstream that is a
/// must, and a backend reading one `Cookie` line sees the whole jar).
fn join_cookies(h: &mut http::HeaderMap) {
    use http::header::{HeaderValue, COOKIE};
    let mut crumbs = h.get_all(COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for crumb in h.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(COOKIE, v);
    }
}

/// Removes from an upstream's answer every `Set-Cookie` for one of the gateway's own cookies
/// (the access cookie, and with the auth center its refresh, device and OpenID login
/// cookies): a backend must not plant a session or a login in the browser (login CSRF,
/// session fixation). Names are compared ignoring case, as browsers treat `__Host-`.
pub(super) fn strip_own_set_cookies(headers: &mut HeaderMap, p: &super::Proxy) {
    let own = |name: &[u8]| {
        let ours = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        p.auth.cookie().is_some_and(ours)
            || (p.auth_center.is_some()
                && [
                    crate::auth_center::REFRESH_COOKIE,
                    crate::auth_center::DEVICE_COOKIE,
                    crate::auth_center::LOGIN_COOKIE,
                ]
                .into_iter()
                .any(ours))
    };
    let set = http::header::SET_COOKIE;
    if !headers
        .get_all(&set)
        .iter()
        .any(|v| own(set_cookie_name(v)))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(&set)
        .iter()
        .filter(|v| !own(set_cookie_name(v)))
        .cloned()
        .collect();
    headers.remove(&set);
    for v in kept {
        headers.append(&set, v);
    }
}

/// The cookie name of a `Set-Cookie` value: up to the first '=' (or ';'), trimmed.
fn set_cookie_name(v: &HeaderValue) -> &[u8] {
    let b = v.as_bytes();
    let end = b
        .iter()
        .position(|c| *c == b'=' || *c == b';')
        .unwrap_or(b.len());
    b[..end].trim_ascii()
}
