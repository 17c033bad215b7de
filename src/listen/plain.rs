//! The plain-HTTP connection, for the redirect and admin listeners: connections from the
//! shared accept loop, served with hyper's bounds, closed when they carry no request for
//! `header_timeout`, drained at shutdown. Headers over `[limits]` get the TLS listener's JSON
//! 431 before the handler sees the request.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::idle::Activity;
use super::{accept_loop, drain, http_builder};
use crate::config::Limits;
use crate::error::GatewayError;
use crate::http::body::{Body, Inbound};
use crate::http::{header_limits, request_id};

/// Accepts plain connections and serves `handler` on each request, until shutdown.
pub async fn serve<F, Fut>(
    limits: Limits,
    listener: Arc<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Inbound>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(http_builder(&limits));
    let graceful = GracefulShutdown::new();
    let limits = Arc::new(limits);
    accept_loop(
        &listener,
        limits.max_connections,
        &mut shutdown,
        |tcp, _peer, permit| {
            let handler = handler.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let limits = limits.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let (header_timeout, body_idle) = (limits.header_timeout, limits.body_idle_timeout);
                // As on the TLS listener (`super::idle`): a connection that carries no request
                // for `header_timeout`, before its first request or between two, is closed.
                let activity = Arc::new(Activity::new());
                let requests = activity.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let in_flight = requests.begin();
                    let req = Inbound::wrap(req);
                    let handler = handler.clone();
                    let limits = limits.clone();
                    async move {
                        let resp = if header_limits::within(req.headers(), &limits) {
                            handler(req).await
                        } else {
                            refused(&req, GatewayError::HeadersTooLarge)
                        };
                        let resp = resp.map(|b| {
                            b.map_frame(move |f| {
                                let _held = &in_flight;
                                f
                            })
                            .boxed_unsync()
                        });
                        Ok::<_, Infallible>(resp)
                    }
                });
                let conn = builder
                    .serve_connection(TokioIo::new(tcp), svc)
                    .into_owned();
                let mut conn = std::pin::pin!(watcher.watch(conn));
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = activity.idle(header_timeout, header_timeout) => {}
                // As on the TLS listener: a client that does not take its answers.
                _ = activity.stalled(body_idle) => {}
                }
            });
        },
    )
    .await;
    drop(listener);
    drain(graceful, limits.shutdown_grace).await;
}

/// A request the plain listeners refuse before their handler (headers over `[limits]`): the
/// same JSON answer as on the TLS listener, with `X-Request-Id`.
fn refused<B>(req: &Request<B>, err: GatewayError) -> Response<Body> {
    let rid = request_id::from_request(req.headers());
    tracing::debug!(request_id = %rid, error = %err, path = req.uri().path(), "plain listener refused");
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(request_id::HEADER.clone(), rid.header_value());
    resp
}
