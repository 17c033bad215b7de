//! A minimal client for the admin listener (plain HTTP on loopback), used by `gateway token`
//! and the tests: one request, the admin bearer token when there is one, a 5 s bound.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Why an admin call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    /// The listener answered with a status other than 2xx.
    #[error("admin listener answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    /// No answer: connection, protocol or timeout.
    #[error("{0}")]
    Transport(String),
}

/// `POST path` with a JSON body; `Ok` on any 2xx.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &impl serde::Serialize,
    token: Option<&[u8]>,
) -> Result<(), AdminCallError> {
    let json = serde_json::to_vec(body).map_err(|e| AdminCallError::Transport(e.to_string()))?;
    let (status, text) = request(addr, Method::POST, path, token, Some(json)).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(AdminCallError::Status {
            status,
            body: String::from_utf8_lossy(&text).into_owned(),
        })
    }
}

/// One request on the admin listener: its status and body, whatever the status.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&[u8]>,
    json: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), AdminCallError> {
    let addr = match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        _ => addr,
    };
    let t = |e: String| AdminCallError::Transport(e);
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            t(format!(
                "admin listener {addr}: {e} (is the gateway running?)"
            ))
        })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| t(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string());
        if let Some(token) = token {
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(token);
            let mut value = http::HeaderValue::from_bytes(&value)
                .map_err(|_| t("the admin token cannot be sent in a header".into()))?;
            value.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, value);
        }
        if json.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| t(e.to_string()))?;
        let resp = send.send_request(req).await.map_err(|e| t(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| t(e.to_string()))?
            .to_bytes();
        Ok((status, text))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| t(format!("admin listener {addr}: no answer in 5s")))?
}
