//! The TLS listener's answer to a request: [`Proxy`] holds what the pipeline needs (built by
//! `app` from the config, rebuilt whole on reload) and [`handle`] runs it, then writes the one
//! access-log line, the metrics and the span. The steps themselves are in `pipeline.rs` (one
//! named step per row of docs/contract.md, "What a request gets"), the upstream request in
//! `upstream.rs`, forwarding in `forward.rs`, WebSocket tunnels in `upgrade.rs`.

pub mod forward;
mod pipeline;
pub mod upgrade;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Request, Response};

use crate::auth::Authenticator;
use crate::auth_center::AuthCenter;
use crate::config::{Limits, Route, TrustedProxies};
use crate::http::body::{Body, Inbound};
use crate::http::trace_context::TraceContext;
use crate::http::{client_addr, request_id};
use crate::identity_headers::IdentityNames;
use crate::observe::metrics::Metrics;
use crate::observe::otlp::Otlp;
use crate::routing::RouteTable;

use self::forward::Forwarder;

/// Everything the pipeline reads, for one config.
pub struct Proxy {
    pub routes: Arc<RouteTable>,
    pub auth: Arc<Authenticator>,
    pub identity: IdentityNames,
    pub forwarder: Forwarder,
    /// `Some` with `[auth]`: its paths are answered by the auth center.
    pub auth_center: Option<AuthCenter>,
    /// `Some` with `[headers] assertion`: a signed identity for every authenticated request.
    pub asserter: Option<Arc<crate::auth::assertion::Asserter>>,
    /// `Strict-Transport-Security` on every answer, with `tls.hsts`.
    pub hsts: Option<HeaderValue>,
    /// The request header bounds (431 above them).
    pub limits: Limits,
    /// Who may name the client's address (`listen.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
    /// `Some` with `[otlp]`: a span per request, exported in the background.
    pub otlp: Option<Arc<Otlp>>,
}

impl Proxy {
    /// How long a request or response body may send nothing before it is cut.
    fn body_idle_timeout(&self) -> Duration {
        self.limits.body_idle_timeout
    }
}

/// What the access log needs from a finished request.
#[derive(Default)]
struct Outcome {
    /// The matched route (its prefix goes to the access log).
    route: Option<Arc<Route>>,
    auth_center: bool,
    /// Who was authenticated (shared with the request, not copied).
    who: Option<crate::auth::Authenticated>,
    /// Authenticated but refused (403): the user id from the refusal.
    refused_user: Option<String>,
    denial: Option<&'static str>,
}

impl Outcome {
    fn user_id(&self) -> Option<&str> {
        match &self.who {
            Some(who) => Some(who.user_id()),
            None => self.refused_user.as_deref(),
        }
    }
}

/// Who sent a request: the connection's peer, and the client address resolved from it.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    peer: SocketAddr,
    client: SocketAddr,
}

/// Serves one request from a client connection; never fails (errors become responses).
/// `peer` is the connection's peer: the TCP peer, or the PROXY header's source.
pub async fn handle(p: &Proxy, peer: SocketAddr, req: Request<Inbound>) -> Response<Body> {
    let started = Instant::now();
    let client = client_addr::resolve(peer, req.headers(), &p.trusted_proxies);
    let method = req.method().clone();
    let version = req.version();
    let rid = request_id::from_request(req.headers());
    let mut trace = TraceContext::from_request(req.headers());
    let span = p.otlp.as_ref().map(|o| o.start_span(&mut trace));
    let mut outcome = Outcome::default();
    let exchange = pipeline::Exchange {
        proxy: p,
        addrs: Addrs { peer, client },
        rid: &rid,
        trace: &trace,
    };
    let result = exchange.run(req, &mut outcome).await;
    let route_label = p.metrics.route_label(
        outcome.route.as_deref().map(|r| r.path.as_str()),
        outcome.auth_center,
    );
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            outcome.denial = Some(err.reason());
            err.observe(&p.metrics, &route_label);
            tracing::debug!(request_id = %rid, error = %err, "request refused");
            err.into_response()
        }
    };
    let h = resp.headers_mut();
    h.insert(request_id::HEADER.clone(), rid.header_value());
    if let Some(hsts) = &p.hsts {
        h.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    p.metrics
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
        user_id = outcome.user_id().unwrap_or("-"),
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
            user_id: outcome.user_id(),
            denial: outcome.denial,
            request_id: rid.to_string(),
        });
    }
    resp
}
