//! The built-in demo upstream (`[demo] echo = ...`): answers every request with a JSON echo
//! of the method, path and headers it received, so the quick start shows what the gateway
//! injected. Not for production.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Limits;
use crate::http::body::{self, Body};
use crate::listen::accept_loop;

/// Serves the echo on `listener` until shutdown, through the listeners' one accept loop (at
/// most `limits.max_connections` at once).
pub async fn serve_echo(
    listener: Arc<TcpListener>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    accept_loop(
        &listener,
        limits.max_connections,
        &mut shutdown,
        |tcp, _, permit| {
            tokio::spawn(async move {
                let _permit = permit;
                let svc = service_fn(|req| async move { Ok::<_, Infallible>(echo(req)) });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        },
    )
    .await;
}

fn echo(req: Request<Incoming>) -> Response<Body> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let mut resp = Response::new(body::full(Bytes::from(
        serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
    )));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
