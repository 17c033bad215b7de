//! The redirect listener (`listen.http`): a 308 to the same host and path on https, except
//! `/healthz` and `/readyz`, answered in place for probes that speak plain HTTP.

use http::header::{HeaderValue, LOCATION};
use http::{Request, Response, StatusCode};

use super::Admin;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};
use crate::http::host;
use crate::routing;

/// Answers one request of the redirect listener; `https_port` is the port in `Location`
/// (`listen.redirect_port`, else the TLS listener's).
pub async fn handle(admin: &Admin, https_port: u16, req: Request<Inbound>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" | "/readyz" => admin.probe(req.uri().path()).await,
        _ => redirect(&req, https_port).unwrap_or_else(GatewayError::into_response),
    }
}

/// 308 to the same host and path on https; a request without a usable Host gets 400.
fn redirect(req: &Request<Inbound>, https_port: u16) -> Result<Response<Body>, GatewayError> {
    // Exactly one valid host, read as the TLS listener reads it (one `Host`, agreeing with
    // `:authority` or an absolute-form target; not a list, userinfo or a path), before it goes
    // into `Location`.
    let host = host::of_request(req)
        .and_then(|h| routing::host_without_port(&h).map(str::to_ascii_lowercase))
        .ok_or(GatewayError::BadHost)?;
    // `host_without_port` keeps an IPv6 literal's brackets.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    // `OPTIONS *` (or any target that is not a path) redirects to the root.
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let location = HeaderValue::from_str(&format!("https://{host}{port}{pq}"))
        .map_err(|_| GatewayError::BadRequest("cannot_redirect"))?;
    let mut resp = body::status(StatusCode::PERMANENT_REDIRECT);
    resp.headers_mut().insert(LOCATION, location);
    Ok(resp)
}
