//! The HTTP calls the gateway makes itself (a JWKS, an OpenID provider's discovery document,
//! its token and userinfo endpoints): bounded (5 s connect to last byte, 1 MiB), `https://`
//! checked against the system's roots, `http://` only where the config allowed it (loopback).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One whole call, connect to last byte.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer body read.
const MAX_BODY: usize = 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot load the system's trusted roots: {0}")]
    Roots(#[source] std::io::Error),
    #[error("cannot build the request: {0}")]
    Request(#[source] http::Error),
    #[error("request failed: {}", error_chain(.0))]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("no complete answer within {}s", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("answered {0}, expected 200")]
    Status(StatusCode),
    #[error("body larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("reading the body failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `error: cause: cause...`; the client's own message alone ("client error (Connect)") does
/// not say what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A client for the URLs of one origin rule: cheap to clone, connections pooled briefly.
#[derive(Clone)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// What a call answered: the status and the whole body (bounded).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Outbound {
    /// For `url`'s scheme: an `https` URL is checked against the system's roots; an `http`
    /// one (loopback only, enforced by the config) never reaches TLS, so it needs no roots.
    pub fn for_url(url: &Uri) -> Result<Outbound, OutboundError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = if url.scheme() == Some(&http::uri::Scheme::HTTPS) {
            HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(OutboundError::Roots)?
        } else {
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| OutboundError::Roots(std::io::Error::other(e)))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(tls)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Outbound { client })
    }

    /// GET `url` for JSON; anything but 200 is an error.
    pub async fn get_json(&self, url: &Uri, bearer: Option<&str>) -> Result<Bytes, OutboundError> {
        let mut req = Request::get(url.clone()).header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let answer = self.call(req, Bytes::new()).await?;
        if answer.status != StatusCode::OK {
            return Err(OutboundError::Status(answer.status));
        }
        Ok(answer.body)
    }

    /// POST a form (`application/x-www-form-urlencoded`) for JSON; the answer is returned
    /// whatever its status (a token endpoint says why in a 400's body).
    pub async fn post_form(
        &self,
        url: &Uri,
        form: String,
        authorization: Option<HeaderValue>,
    ) -> Result<Answer, OutboundError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(value) = authorization {
            req = req.header(AUTHORIZATION, value);
        }
        self.call(req, Bytes::from(form)).await
    }

    async fn call(
        &self,
        req: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer, OutboundError> {
        let req = req
            .header(USER_AGENT, concat!("gateway/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(OutboundError::Request)?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(OutboundError::Connect)?;
            let status = resp.status();
            let collected = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        OutboundError::TooLarge
                    } else {
                        OutboundError::Body(e)
                    }
                })?;
            Ok(Answer {
                status,
                body: collected.to_bytes(),
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| OutboundError::Timeout)?
    }
}
