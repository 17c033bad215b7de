//! A minimal client for the admin listener (plain HTTP on loopback), used by `gateway token`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<(), String> {
    let addr = match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        _ => addr,
    };
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("admin listener {addr}: {e} (is the gateway running?)"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let json = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "admin listener answered {status}: {}",
                String::from_utf8_lossy(&text)
            ))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| format!("admin listener {addr}: no answer in 5s"))?
}
