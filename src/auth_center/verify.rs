//! `GET {auth.path}/verify`: forward-auth for nginx `auth_request` and Traefik ForwardAuth.
//! The original request is named by one proxy's header set, never a mix (docs/contract.md, "Forward-auth"):
//!
//! - nginx, when `X-Original-URI` is present: `X-Original-URI`, `X-Original-Method`,
//!   `X-Original-Host`. `X-Forwarded-*` are then ignored: nginx passes a client's own headers
//!   to the subrequest, so a client's `X-Forwarded-Uri: /public/` must not name the request.
//! - Traefik otherwise, when `X-Forwarded-Uri` is present: `X-Forwarded-Uri`,
//!   `X-Forwarded-Method`, `X-Forwarded-Host` (Traefik sets them itself).
//!
//! All three are required in either set (the subrequest's own method and `Host` are not the
//! original's), and each must come exactly once: a missing, repeated or malformed one is 400,
//! never guessed. That route's rules are applied: its auth mode, its methods (405) and its
//! roles (403). 200 carries the identity headers for the proxy to copy upstream. A URI no
//! route matches is 404 (and one with a `#` is 400); without an original URI at all, a valid
//! session is required and no role is.

use http::{HeaderMap, HeaderName, Method, Response, StatusCode};

use super::caller;
use super::Deps;
use crate::error::GatewayError;
use crate::http::body::{self, Body};
use crate::identity_headers;
use crate::routing;

static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-original-host");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The headers one proxy names the original request with.
struct HeaderSet {
    uri: &'static HeaderName,
    method: &'static HeaderName,
    host: &'static HeaderName,
}

const NGINX: HeaderSet = HeaderSet {
    uri: &X_ORIGINAL_URI,
    method: &X_ORIGINAL_METHOD,
    host: &X_ORIGINAL_HOST,
};
const TRAEFIK: HeaderSet = HeaderSet {
    uri: &X_FORWARDED_URI,
    method: &X_FORWARDED_METHOD,
    host: &X_FORWARDED_HOST,
};

/// The request the proxy asks about.
#[derive(Debug, PartialEq, Eq)]
struct Original {
    method: Method,
    /// Normalised, without the query.
    path: String,
    /// Lower-case, without the port.
    host: String,
}

/// `None`: no original request named (neither `X-Original-URI` nor `X-Forwarded-Uri`).
fn original(headers: &HeaderMap) -> Result<Option<Original>, GatewayError> {
    let set = if headers.contains_key(&X_ORIGINAL_URI) {
        NGINX
    } else if headers.contains_key(&X_FORWARDED_URI) {
        TRAEFIK
    } else {
        return Ok(None);
    };
    let uri = one(headers, set.uri).ok_or(GatewayError::BadRequest("bad_original_uri"))?;
    // A fragment never belongs in a request target: nginx would forward `/public/x#/../admin`
    // whole while the path before `#` was authorised, so what is authorised would not be what
    // is served.
    if !uri.starts_with('/') || uri.contains('#') {
        return Err(GatewayError::BadRequest("bad_original_uri"));
    }
    let raw_path = uri.split('?').next().unwrap_or("/");
    let path = crate::http::path::normalise(raw_path)?;
    // The proxy forwards the target as the client sent it, not as normalised here: a path
    // that normalisation would change (`/admin/%2e%2e/public/x`, `/admin/../public/x`, `//`,
    // a decodable escape) would be authorised as one path and served as another. Only a
    // path that is already canonical (escapes' hex case aside) is answered.
    if !same_but_escape_case(raw_path.as_bytes(), path.as_bytes()) {
        return Err(GatewayError::BadRequest("non_canonical_original_uri"));
    }
    let method = one(headers, set.method)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(GatewayError::BadRequest("bad_original_method"))?;
    let host = one(headers, set.host)
        .filter(|h| crate::http::host::parse(h).is_ok())
        .and_then(routing::host_without_port)
        .map(str::to_ascii_lowercase)
        .ok_or(GatewayError::BadHost)?;
    Ok(Some(Original { method, path, host }))
}

pub(super) async fn verify(gw: &Deps, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
    // A named request that no route matches is 404, as on the TLS listener: a spelling the
    // route table does not know (`/ADMIN/x`, `/admin./x`) must not pass on a bare session to a
    // backend that may read it as a protected path.
    let route = match original(headers)? {
        None => None,
        Some(o) => {
            let route = gw
                .routes
                .find(Some(&o.host), &o.path)
                .cloned()
                .ok_or(GatewayError::NoRoute)?;
            Some((route, o.method))
        }
    };
    let who = match &route {
        Some((route, method)) => {
            if !routing::allows(route, method) {
                return Err(GatewayError::MethodNotAllowed {
                    allow: routing::allow_header(route),
                });
            }
            // The proxy's own policy: the route's auth mode and roles.
            crate::auth::authorize::authorize(&gw.auth, route, headers).await?
        }
        None => Some(caller(gw, headers).await?.who),
    };
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    if let Some(who) = who {
        let h = resp.headers_mut();
        identity_headers::set(h, &gw.identity, &who)
            .map_err(|_| GatewayError::InvalidToken("identity_not_a_header_value"))?;
        // With a route named: what the proxy would add for it (claims, assertion).
        if let Some((route, _)) = &route {
            identity_headers::set_claims(h, route, &who);
            if let Some(asserter) = &gw.asserter {
                let value = asserter
                    .assertion(&who, route)
                    .map_err(|e| GatewayError::Internal(format!("identity assertion: {e}")))?;
                h.insert(asserter.header().clone(), value);
            }
        }
    }
    Ok(resp)
}

/// `a` and `b` are the same bytes, except that the two hex digits after a `%` may differ in
/// case.
fn same_but_escape_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] == b'%' && b[i] == b'%' && i + 2 < a.len() {
            if !a[i + 1..i + 3].eq_ignore_ascii_case(&b[i + 1..i + 3]) {
                return false;
            }
            i += 3;
        } else if a[i] == b[i] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// The header's value when it is there exactly once, is text and is not empty; `None` for a
/// missing, repeated or unreadable one (the callers refuse all three).
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn reason(r: Result<Option<Original>, GatewayError>) -> &'static str {
        match r {
            Err(e) => e.reason(),
            Ok(o) => panic!("accepted: {o:?}"),
        }
    }

    const NGINX_OK: [(&str, &str); 3] = [
        ("x-original-uri", "/admin/a?x=1"),
        ("x-original-method", "DELETE"),
        ("x-original-host", "Api.Example.com:8443"),
    ];

    #[test]
    fn one_value_only() {
        let mut h = HeaderMap::new();
        assert_eq!(one(&h, &X_ORIGINAL_URI), None);
        h.append(&X_ORIGINAL_URI, HeaderValue::from_static(" /a "));
        assert_eq!(one(&h, &X_ORIGINAL_URI), Some("/a"));
        h.append(&X_ORIGINAL_URI, HeaderValue::from_static("/b"));
        assert_eq!(one(&h, &X_ORIGINAL_URI), None);
    }

    #[test]
    fn nginx_headers_win_and_forwarded_ones_are_ignored() {
        let mut pairs = NGINX_OK.to_vec();
        pairs.extend([
            ("x-forwarded-uri", "/public/"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "public.example.com"),
        ]);
        let o = original(&headers(&pairs)).unwrap().unwrap();
        assert_eq!(
            o,
            Original {
                method: Method::DELETE,
                path: "/admin/a".into(),
                host: "api.example.com".into(),
            }
        );
        // Repeated client copies of the ignored set do not matter either.
        pairs.push(("x-forwarded-uri", "/other/"));
        assert!(original(&headers(&pairs)).unwrap().is_some());
    }

    #[test]
    fn traefik_headers_without_x_original_uri() {
        let h = headers(&[
            ("x-forwarded-uri", "/ro/a"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "localhost"),
            // The nginx method and host mean nothing without X-Original-URI.
            ("x-original-method", "GET"),
            ("x-original-host", "elsewhere"),
        ]);
        let o = original(&h).unwrap().unwrap();
        assert_eq!((o.method, o.path.as_str()), (Method::POST, "/ro/a"));
        assert_eq!(o.host, "localhost");
    }

    #[test]
    fn no_original_request_is_none() {
        let h = headers(&[("x-forwarded-method", "GET"), ("x-original-host", "a")]);
        assert!(original(&h).unwrap().is_none());
    }

    #[test]
    fn a_repeated_header_is_refused_not_guessed() {
        for dup in NGINX_OK {
            let mut pairs = NGINX_OK.to_vec();
            pairs.push((dup.0, "/public/"));
            let r = original(&headers(&pairs));
            assert!(r.is_err(), "{} twice accepted", dup.0);
        }
        let twice = headers(&[
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-uri", "/public/"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "h"),
        ]);
        assert_eq!(reason(original(&twice)), "bad_original_uri");
    }

    #[test]
    fn every_header_of_the_set_is_required() {
        for (missing, name) in NGINX_OK.iter().map(|p| p.0).enumerate() {
            let pairs: Vec<_> = NGINX_OK.iter().filter(|p| p.0 != name).copied().collect();
            let h = headers(&pairs);
            // Without X-Original-URI there is no original request at all.
            if missing == 0 {
                assert!(original(&h).unwrap().is_none());
            } else {
                assert!(original(&h).is_err(), "{name} missing");
            }
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        let with = |name: &'static str, value: &'static str| {
            let mut pairs: Vec<_> = NGINX_OK.iter().filter(|p| p.0 != name).copied().collect();
            pairs.push((name, value));
            original(&headers(&pairs))
        };
        assert_eq!(
            reason(with("x-original-uri", "admin/a")),
            "bad_original_uri"
        );
        assert_eq!(
            reason(with("x-original-uri", "http://h/admin/")),
            "bad_original_uri"
        );
        assert_eq!(reason(with("x-original-uri", "/a/%2e%2e/%2fx")), "bad_path");
        assert_eq!(
            reason(with("x-original-uri", "/public/x#/../../admin/y")),
            "bad_original_uri"
        );
        assert_eq!(reason(with("x-original-host", "user@h")), "bad_host");
        // Authorised as /public/x, served as the raw target: refused.
        for uri in [
            "/admin/%2e%2e/public/x",
            "/admin/../public/x",
            "/admin/./../public/x",
            "/admin/.%2e/public/x",
            "//admin/x",
            "/%61dmin/x",
        ] {
            let why = reason(with("x-original-uri", uri));
            assert!(
                matches!(why, "non_canonical_original_uri" | "bad_path"),
                "{uri}: {why}"
            );
        }
        // Already canonical (escapes in any case) and with a query: fine.
        for uri in ["/api/caf%c3%a9?q=1", "/api/caf%C3%A9", "/api/x/"] {
            assert!(with("x-original-uri", uri).is_ok(), "{uri}");
        }
        assert_eq!(
            reason(with("x-original-method", "G ET")),
            "bad_original_method"
        );
        assert_eq!(reason(with("x-original-host", "a, b")), "bad_host");
        assert_eq!(reason(with("x-original-host", "")), "bad_host");
    }
}
