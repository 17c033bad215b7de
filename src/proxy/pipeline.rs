//! The request pipeline on the TLS listener, one named step per row of docs/contract.md,
//! "What a request gets": header limits -> host -> path -> (the auth center's paths) -> route
//! -> method -> strip headers -> token/JWT/session and roles (`auth::authorize`) -> body limit
//! -> the upstream request -> forward -> response (or a WebSocket tunnel).

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Request, Response, StatusCode, Version};

use super::{upstream, Addrs, Outcome, Proxy};
use crate::auth::authorize::authorize;
use crate::auth::AuthError;
use crate::config::UpstreamProtocol;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};
use crate::http::request_id::RequestId;
use crate::http::trace_context::TraceContext;
use crate::http::{header_limits, hop_by_hop, host};
use crate::identity_headers;
use crate::routing;

/// One request on its way through the pipeline: the proxy's state and what the request
/// brought that every step may read.
pub(super) struct Exchange<'a> {
    pub proxy: &'a Proxy,
    pub addrs: Addrs,
    pub rid: &'a RequestId,
    pub trace: &'a TraceContext,
}

impl Exchange<'_> {
    pub async fn run(
        &self,
        mut req: Request<Inbound>,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, GatewayError> {
        let p = self.proxy;
        if !header_limits::within(req.headers(), &p.limits) {
            return Err(GatewayError::HeadersTooLarge);
        }
        let host = host::of_request(&req).ok_or(GatewayError::BadHost)?;
        let path = crate::http::path::normalise(req.uri().path())?;
        if let Some(center) = p.auth_center.as_ref().filter(|c| c.owns(&path)) {
            outcome.auth_center = true;
            // The auth center's lockout and IP binding key on the resolved client address.
            // Boxed: its logins (argon2, the OpenID provider's endpoints) carry far more state
            // than a proxied request, and every request's future would be that large.
            return Ok(Box::pin(center.handle(self.addrs.client, &path, req)).await);
        }
        let route = p
            .routes
            .find(routing::host_without_port(&host), &path)
            .ok_or(GatewayError::NoRoute)?
            .clone();
        outcome.route = Some(route.clone());
        if !routing::allows(&route, req.method()) {
            return Err(GatewayError::MethodNotAllowed {
                allow: routing::allow_header(&route),
            });
        }
        // Strip before anything reads identity: hop-by-hop (and what Connection names) first,
        // then every spelling of the identity headers. Only `identity_headers::set` (in the
        // upstream request) adds them back.
        let upgrade = req.version() == Version::HTTP_11
            && hop_by_hop::upgrade_requested(req.headers()).is_some();
        // gRPC over h2c needs `te: trailers`, the one TE value a proxy may pass on.
        let keep_te =
            route.protocol == UpstreamProtocol::H2c && hop_by_hop::wants_trailers(req.headers());
        if upgrade {
            hop_by_hop::remove_keep_upgrade(req.headers_mut());
        } else {
            hop_by_hop::remove(req.headers_mut());
        }
        identity_headers::strip_inbound(req.headers_mut(), &p.identity);
        if keep_te {
            req.headers_mut()
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }

        let who = match authorize(&p.auth, &route, req.headers()).await {
            Ok(who) => who,
            Err(e) => {
                if let AuthError::Forbidden { user_id } = &e {
                    outcome.refused_user = Some(user_id.clone());
                }
                return Err(e.into());
            }
        };
        outcome.who.clone_from(&who);
        check_content_length(req.headers(), route.max_body)?;

        self.trace.apply(req.headers_mut());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let target = upstream::Target {
            route: &route,
            host: &host,
            path: &path,
            who: who.as_ref(),
        };
        let upstream_req = upstream::request(self, &target, req)?;
        let mut resp = p.forwarder.forward(&route, upstream_req).await?;

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Only the WebSocket upgrade the client asked for; anything else would be a tunnel.
            let (Some(client_upgrade), Some(_)) = (
                client_upgrade,
                hop_by_hop::upgrade_requested(resp.headers()),
            ) else {
                return Err(GatewayError::UpstreamUnavailable {
                    upstream: route.path.clone(),
                    source: "switched protocols without a WebSocket upgrade".into(),
                });
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let watch = super::upgrade::Watch::start(&p.auth, who.as_ref(), &route.roles);
            tokio::spawn(super::upgrade::splice(
                client_upgrade,
                upstream_upgrade,
                watch,
            ));
            let (parts, _) = resp.into_parts();
            let mut out = Response::from_parts(parts, body::empty());
            hop_by_hop::remove_keep_upgrade(out.headers_mut());
            upstream::strip_own_set_cookies(out.headers_mut(), p);
            return Ok(out);
        }
        let (mut parts, incoming) = resp.into_parts();
        hop_by_hop::remove(&mut parts.headers);
        upstream::strip_own_set_cookies(&mut parts.headers, p);
        Ok(Response::from_parts(
            parts,
            body::bounded(incoming, p.body_idle_timeout(), u64::MAX),
        ))
    }
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
