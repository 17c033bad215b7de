//! The two plain-HTTP listeners: the redirect listener (308 to https, but `/healthz` and
//! `/readyz` answered in place for probes) and the admin listener (`/healthz`, `/readyz`,
//! `/metrics`, and, with `[admin]`, session administration behind a bearer token; never expose
//! it beyond the host or cluster). Both refuse headers over `[limits]` with the TLS listener's
//! JSON 431.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::http::body::{self, Body, Inbound};
use crate::app::{Gateway, Live};
use crate::listen::idle::Activity;
use crate::listen::tls::{drain, http_builder, shutdown_signalled};

/// Accepts plain connections and serves `handler` on each (with the gateway current when the
/// request came), until shutdown.
async fn serve_plain<F, Fut>(
    live: Arc<Live>,
    listener: Arc<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Arc<Gateway>, Request<Inbound>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    // `[limits]` take effect on restart only, so the first config's are the ones in force.
    let limits = live.get().config.limits.clone();
    let builder = Arc::new(http_builder(&limits));
    let graceful = GracefulShutdown::new();
    // The same bound as the TLS listener: a neighbour's idle sockets cannot pile up.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        let live = live.clone();
        let handler = handler.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // As on the TLS listener (`crate::listen::idle`): a connection that carries no request
            // for `header_timeout`, before its first request or between two, is closed.
            let activity = Arc::new(Activity::new());
            let requests = activity.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let in_flight = requests.begin();
                let req = Inbound::wrap(req);
                let gw = live.get();
                let handler = handler.clone();
                async move {
                    let resp = match crate::http::header_limits::check(req.headers(), &gw.config.limits) {
                        Ok(()) => handler(gw, req).await,
                        Err(err) => refused(&req, err),
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
            }
        });
    }
    drop(listener);
    drain(graceful, limits.shutdown_grace).await;
}

/// A request the plain listeners refuse before their handler (headers over `[limits]`): the
/// same JSON answer as on the TLS listener, with `X-Request-Id`.
fn refused<B>(req: &Request<B>, err: crate::error::GatewayError) -> Response<Body> {
    let rid = crate::http::request_id::from_request(req.headers());
    tracing::debug!(request_id = %rid, error = %err, path = req.uri().path(), "plain listener refused");
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(crate::http::request_id::HEADER.clone(), rid.header_value());
    resp
}

pub async fn serve_redirect(
    live: Arc<Live>,
    listener: Arc<TcpListener>,
    https_port: u16,
    shutdown: watch::Receiver<bool>,
) {
    serve_plain(live, listener, shutdown, move |gw, req| async move {
        match req.uri().path() {
            "/healthz" | "/readyz" => probe(&gw, req.uri().path()).await,
            _ => redirect(&req, https_port),
        }
    })
    .await
}

/// 308 to the same host and path on https; a request without a usable Host gets 400.
fn redirect(req: &Request<Inbound>, https_port: u16) -> Response<Body> {
    // Exactly one valid host, read as the TLS listener reads it (one `Host`, agreeing with
    // `:authority` or an absolute-form target; not a list, userinfo or a path), before it goes
    // into `Location`.
    let host = crate::proxy::request_host(req)
        .ok()
        .and_then(|h| crate::routing::host_without_port(&h));
    let Some(host) = host else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"bad_host","message":"the request needs a Host"}"#,
        );
    };
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
    let location = format!("https://{host}{port}{pq}");
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut resp = Response::new(body::empty());
            *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
            resp.headers_mut().insert(LOCATION, v);
            resp
        }
        Err(_) => json(
            StatusCode::BAD_REQUEST,
            r#"{"error":"bad_request","message":"cannot redirect this request"}"#,
        ),
    }
}

pub async fn serve_admin(
    live: Arc<Live>,
    listener: Arc<TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    serve_plain(live, listener, shutdown, |gw, req| async move {
        admin(gw, req).await
    })
    .await
}

async fn admin(gw: Arc<Gateway>, req: Request<Inbound>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz" | "/readyz") => probe(&gw, &path).await,
        (&Method::GET, "/metrics") => metrics(&gw),
        // Behind `[admin]` and its bearer token (404 / 401 there).
        (_, p) if crate::admin::sessions::is_session_path(p) => {
            crate::admin::sessions::handle(&gw, req).await
        }
        _ => crate::admin::sessions::not_found(),
    }
}

/// `/metrics`: every metric as OpenMetrics text (Prometheus scrapes it as it is).
fn metrics(gw: &Gateway) -> Response<Body> {
    match gw.metrics.encode() {
        Ok(text) => {
            let mut resp = Response::new(body::full(Bytes::from(text)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::observe::metrics::CONTENT_TYPE),
            );
            resp
        }
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"internal_error","message":"cannot encode the metrics"}"#,
        ),
    }
}

/// `/healthz`: the process answers. `/readyz`: and the session store answers too.
async fn probe(gw: &Gateway, path: &str) -> Response<Body> {
    if path == "/readyz" {
        if let Err(e) = gw.auth.store().ping().await {
            tracing::warn!(error = %e, "not ready: session store");
            let mut r = json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"unavailable","message":"the session store does not answer"}"#,
            );
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    }
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

pub fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Reads a small JSON body (at most `max` bytes).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Inbound>,
    max: usize,
) -> Result<T, String> {
    // A body trickled in slowly must not hold the connection: the whole of it within 10 s.
    let collect = Limited::new(req.into_body(), max).collect();
    let bytes = tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .map_err(|_| "the body did not arrive in time".to_owned())?
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
}
