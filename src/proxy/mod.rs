//! The request pipeline on the TLS listener, one named step per line of CONTRACT.md section 3:
//! header limits -> host -> path -> route -> method -> strip headers -> token/JWT/session ->
//! roles -> body limit -> set identity -> forward -> response. Each answer is counted in
//! `metrics` and logged once (`access` target) with its request id and W3C trace id.

pub mod forward;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_LENGTH, HOST};
use http::{HeaderMap, Request, Response, StatusCode, Version};

use crate::auth::{AuthError, Authenticated};
use crate::http::body::{self, Body, Inbound};
use crate::config::{AuthMode, Route, UpstreamProtocol};
use crate::error::GatewayError;
use crate::app::Gateway;
use crate::identity_headers::{self, Identity};
use crate::http::trace_context::TraceContext;
use crate::{http::client_addr, http::header_limits, http::hop_by_hop, http::request_id, routing};

/// What the access log needs from a finished request.
#[derive(Default)]
struct Outcome {
    /// The matched route (its prefix goes to the access log).
    route: Option<Arc<Route>>,
    auth_center: bool,
    user_id: Option<String>,
    denial: Option<&'static str>,
}

/// Serves one request from a client connection; never fails (errors become responses).
/// `peer` is the connection's peer: the TCP peer, or the PROXY header's source.
pub async fn handle(gw: Arc<Gateway>, peer: SocketAddr, req: Request<Inbound>) -> Response<Body> {
    let started = Instant::now();
    let client = client_addr::resolve(peer, req.headers(), &gw.config.listen.trusted_proxies);
    let method = req.method().clone();
    let version = req.version();
    let rid = request_id::from_request(req.headers());
    let mut trace = TraceContext::from_request(req.headers());
    let span = gw.otlp.as_ref().map(|o| o.start_span(&mut trace));
    let mut outcome = Outcome::default();
    let addrs = Addrs { peer, client };
    let result = pipeline(&gw, addrs, req, &rid, &trace, &mut outcome).await;
    let route_label = gw.metrics.route_label(
        outcome.route.as_deref().map(|r| r.path.as_str()),
        outcome.auth_center,
    );
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            outcome.denial = Some(err.reason());
            err.observe(&gw.metrics, &route_label);
            tracing::debug!(request_id = %rid, error = %err, "request refused");
            err.into_response()
        }
    };
    let h = resp.headers_mut();
    h.insert(request_id::HEADER.clone(), rid.header_value());
    if let Some(hsts) = &gw.hsts {
        h.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    gw.metrics
        .observe_request(&route_label, &method, status, elapsed);
    tracing::info!(
        target: "access",
        method = %method,
        version = ?version,
        route = match (&outcome.route, outcome.auth_center) {
            (_, true) => "auth_center",
            (Some(r), false) => r.path.as_str(),
            (None, false) => "-",
        },
        status,
        user_id = outcome.user_id.as_deref().unwrap_or("-"),
        denial = outcome.denial.unwrap_or("-"),
        latency_us = elapsed.as_micros() as u64,
        request_id = %rid,
        trace_id = trace.trace_id(),
        peer = %client.ip(),
    );
    if let Some(span) = span {
        span.finish(crate::observe::otlp::Finished {
            method: &method,
            route: &route_label,
            status,
            user_id: outcome.user_id.as_deref(),
            denial: outcome.denial,
            request_id: rid.to_string(),
        });
    }
    resp
}

/// Who sent a request: the connection's peer, and the client address resolved from it.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    peer: SocketAddr,
    client: SocketAddr,
}

async fn pipeline(
    gw: &Gateway,
    addrs: Addrs,
    mut req: Request<Inbound>,
    rid: &request_id::RequestId,
    trace: &TraceContext,
    outcome: &mut Outcome,
) -> Result<Response<Body>, GatewayError> {
    header_limits::check(req.headers(), &gw.config.limits)?;
    let host = request_host(&req)?;
    let raw_path = req.uri().path();
    let path = crate::http::path::normalise(raw_path)?;
    if let Some(center) = gw.auth_center.as_ref().filter(|c| c.owns(&path)) {
        outcome.auth_center = true;
        // The auth center's lockout and IP binding key on the resolved client address.
        return Ok(center.handle(gw, addrs.client, &path, req).await);
    }
    let route = gw
        .routes
        .find(routing::host_without_port(&host).as_deref(), &path)
        .ok_or(GatewayError::NoRoute)?
        .clone();
    outcome.route = Some(route.clone());
    if !routing::allows(&route, req.method()) {
        return Err(GatewayError::MethodNotAllowed {
            allow: routing::allow_header(&route),
        });
    }
    // Strip before anything reads identity: hop-by-hop (and what Connection names) first,
    // then every spelling of the identity headers. Only `set_identity` below adds them back.
    let upgrade =
        req.version() == Version::HTTP_11 && hop_by_hop::upgrade_requested(req.headers()).is_some();
    // gRPC over h2c needs `te: trailers`, the one TE value a proxy may pass on.
    let keep_te =
        route.protocol == UpstreamProtocol::H2c && hop_by_hop::wants_trailers(req.headers());
    if upgrade {
        hop_by_hop::remove_keep_upgrade(req.headers_mut());
    } else {
        hop_by_hop::remove(req.headers_mut());
    }
    identity_headers::strip_inbound(req.headers_mut(), &gw.identity);
    if keep_te {
        req.headers_mut()
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
    }

    let who = authenticate(gw, &route, req.headers()).await?;
    outcome.user_id = who.as_ref().map(|a| a.user_id().to_owned());
    if let Some(a) = &who {
        if !a.has_any_role(&route.roles) {
            return Err(GatewayError::InsufficientRole);
        }
    }
    check_content_length(req.headers(), route.max_body)?;

    trace.apply(req.headers_mut());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upstream_req =
        build_upstream_request(gw, &route, addrs, &host, &path, rid, who.as_ref(), req)?;
    let mut resp = gw.forwarder.forward(&route, upstream_req).await?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Only the WebSocket upgrade the client asked for; anything else would be a tunnel.
        let (Some(client_upgrade), Some(_)) = (
            client_upgrade,
            hop_by_hop::upgrade_requested(resp.headers()),
        ) else {
            return Err(GatewayError::UpstreamUnavailable(
                "upstream switched protocols without a WebSocket upgrade".into(),
            ));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let watch = crate::proxy::upgrade::Watch::start(&gw.auth, who.as_ref(), &route.roles);
        tokio::spawn(crate::proxy::upgrade::splice(
            client_upgrade,
            upstream_upgrade,
            watch,
        ));
        let (parts, _) = resp.into_parts();
        let mut out = Response::from_parts(parts, body::empty());
        hop_by_hop::remove_keep_upgrade(out.headers_mut());
        return Ok(out);
    }
    let (mut parts, incoming) = resp.into_parts();
    hop_by_hop::remove(&mut parts.headers);
    let idle = gw.config.limits.body_idle_timeout;
    Ok(Response::from_parts(
        parts,
        body::bounded(incoming, idle, u64::MAX),
    ))
}

/// Step 4-7: which identity, if any, goes upstream, by the route's auth mode.
pub(crate) async fn authenticate(
    gw: &Gateway,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, GatewayError> {
    if route.auth == AuthMode::Public {
        return Ok(None);
    }
    match gw.auth.authenticate(headers).await {
        Ok(Some(a)) => Ok(Some(a)),
        Ok(None) if route.auth == AuthMode::Optional => Ok(None),
        Ok(None) => Err(GatewayError::MissingToken),
        Err(AuthError::Missing) if route.auth == AuthMode::Optional => Ok(None),
        Err(AuthError::Missing) => Err(GatewayError::MissingToken),
        Err(AuthError::Invalid(reason)) => Err(GatewayError::InvalidToken(reason)),
        Err(AuthError::Store(e)) => Err(GatewayError::StoreUnavailable(e)),
    }
}

/// Step 8: the request as the upstream sees it: the normalised (and maybe stripped) path,
/// identity from `who` only, X-Forwarded-*, X-Request-Id, token removed unless forwarded.
#[allow(clippy::too_many_arguments)]
fn build_upstream_request(
    gw: &Gateway,
    route: &Route,
    addrs: Addrs,
    host: &str,
    path: &str,
    rid: &request_id::RequestId,
    who: Option<&Authenticated>,
    req: Request<Inbound>,
) -> Result<Request<Body>, GatewayError> {
    let (mut parts, incoming) = req.into_parts();
    let mut target = routing::upstream_path(route, path);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    parts.uri = target
        .parse()
        .map_err(|_| GatewayError::BadPath(crate::http::path::PathError::InvalidEscape))?;
    let h = &mut parts.headers;
    if !route.forward_token {
        crate::auth::bearer::strip_token(h, gw.auth.cookie());
    }
    if gw.auth_center.is_some() {
        // The auth center's device cookie is `Path=/` (`__Host-` requires it), so browsers
        // send it everywhere; it is the auth center's business, not a backend's.
        crate::auth::bearer::strip_cookie(h, crate::auth_center::DEVICE_COOKIE);
    }
    if let Some(a) = who {
        let identity = Identity {
            user_id: a.user_id(),
            roles: a.roles(),
            session_id: a.session_id(),
        };
        identity_headers::set(h, &gw.identity, &identity)
            .map_err(|_| GatewayError::InvalidToken("identity_not_a_header_value"))?;
    }
    let trusted = &gw.config.listen.trusted_proxies;
    client_addr::set_forwarding_headers(h, addrs.peer, addrs.client, trusted, host);
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(HOST, v);
    }
    h.insert(request_id::HEADER.clone(), rid.header_value());
    let idle = gw.config.limits.body_idle_timeout;
    Ok(Request::from_parts(
        parts,
        body::bounded(incoming, idle, route.max_body),
    ))
}

/// Exactly one host: HTTP/1 needs one Host header (and an absolute-form target must agree);
/// HTTP/2 has `:authority`, and a Host header beside it must agree. It must be one valid
/// host (`host::parse`).
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<String, GatewayError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadHost);
    }
    let header = match header {
        Some(v) => Some(v.to_str().map_err(|_| GatewayError::BadHost)?),
        None => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    let host = match (header, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => return Err(GatewayError::BadHost),
        (Some(h), _) => h,
        (None, Some(a)) if req.version() == Version::HTTP_2 => a,
        _ => return Err(GatewayError::BadHost),
    };
    // One `uri-host [":" port]` (an authority beside it is the same, above): not a list,
    // userinfo, a path, a bad port or spaces.
    crate::http::host::parse(host).map_err(|_| GatewayError::BadHost)?;
    Ok(host.to_owned())
}

/// A declared length above the route's limit is refused before anything is forwarded; a
/// streamed body is cut by `body::Bounded` when it passes the limit.
fn check_content_length(h: &HeaderMap, max: u64) -> Result<(), GatewayError> {
    if let Some(v) = h.get(CONTENT_LENGTH) {
        let len: u64 = v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(GatewayError::BodyTooLarge)?;
        if len > max {
            return Err(GatewayError::BodyTooLarge);
        }
    }
    Ok(())
}
