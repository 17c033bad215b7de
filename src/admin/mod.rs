//! The admin listener's answers: `/healthz`, `/readyz` (503 while the session store does not
//! answer), `/metrics`, and, with `[admin]`, session administration behind its bearer token
//! (`sessions.rs`). The redirect listener's answers are in `redirect.rs` (it answers the
//! probes too). Never expose the admin listener beyond the host or cluster.

pub mod redirect;
pub mod sessions;

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::auth::Authenticator;
use crate::config;
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};
use crate::observe::metrics::Metrics;

/// What the admin answers need, for one config.
pub struct Admin {
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    /// `None` without `[admin]`: the session endpoints answer 404.
    config: Option<config::Admin>,
}

impl Admin {
    pub fn new(
        auth: Arc<Authenticator>,
        metrics: Arc<Metrics>,
        config: Option<config::Admin>,
    ) -> Admin {
        Admin {
            auth,
            metrics,
            config,
        }
    }

    /// Answers one request of the admin listener.
    pub async fn handle(&self, req: Request<Inbound>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let answer = match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz" | "/readyz") => return self.probe(&path).await,
            (&Method::GET, "/metrics") => self.metrics(),
            // Behind `[admin]` and its bearer token (404 / 401 there).
            (_, p) if sessions::is_session_path(p) => sessions::handle(self, req).await,
            _ => Err(GatewayError::NoRoute),
        };
        answer.unwrap_or_else(|e| {
            tracing::debug!(error = %e, path, "admin listener refused");
            e.into_response()
        })
    }

    /// `/healthz`: the process answers. `/readyz`: and the session store answers too (503
    /// with `Retry-After` while it does not).
    pub async fn probe(&self, path: &str) -> Response<Body> {
        if path == "/readyz" {
            if let Err(e) = self.auth.store().ping().await {
                tracing::warn!(error = %e, "not ready: session store");
                let mut r = body::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({
                        "status": "unavailable",
                        "message": "the session store does not answer",
                    }),
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        }
        body::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
    }

    /// `/metrics`: every metric as OpenMetrics text (Prometheus scrapes it as it is).
    fn metrics(&self) -> Result<Response<Body>, GatewayError> {
        let text = self
            .metrics
            .encode()
            .map_err(|e| GatewayError::Internal(format!("cannot encode the metrics: {e}")))?;
        let mut resp = Response::new(body::full(text));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::observe::metrics::CONTENT_TYPE),
        );
        Ok(resp)
    }
}

/// Reads a small JSON body (at most `max` bytes, all of it within 10 s: a body trickled in
/// slowly must not hold the connection).
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Inbound>,
    max: usize,
) -> Result<T, GatewayError> {
    let collect = Limited::new(req.into_body(), max).collect();
    let bytes = tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .map_err(|_| GatewayError::BadRequest("body_timeout"))?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                GatewayError::BodyTooLarge
            } else {
                GatewayError::BadRequest("body_unreadable")
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| GatewayError::BadRequest("invalid_json"))
}
