//! A TLS client that talks to the gateway the way a real one would: rustls with the
//! gateway's certificate as its root, ALPN `h2` or `http/1.1`, hyper's client connection.
//! `raw_h1` writes bytes as given, for requests hyper's client would refuse to build.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub proto: Proto,
    connector: TlsConnector,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: Version,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// One client connection of either protocol.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    /// False once the connection cannot take another request (closed, or told to close).
    pub async fn ready(&mut self) -> bool {
        match self {
            Conn::H1(s) => s.ready().await.is_ok(),
            Conn::H2(s) => s.ready().await.is_ok(),
        }
    }

    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Conn::H1(s) => s.send_request(req).await,
            Conn::H2(s) => s.send_request(req).await,
        }
    }
}

pub fn connector(cert_pem: &Path, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(cfg))
}

impl Client {
    pub fn new(addr: SocketAddr, cert_pem: &Path, proto: Proto) -> Client {
        let alpn: &[&[u8]] = match proto {
            Proto::H1 => &[b"http/1.1"],
            Proto::H2 => &[b"h2"],
        };
        Client {
            addr,
            proto,
            connector: connector(cert_pem, alpn),
        }
    }

    pub async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        self.connector.connect(name, tcp).await.unwrap()
    }

    /// A request with the usual Host for this protocol; add headers with `extra`.
    pub fn req(&self, method: &str, path: &str) -> http::request::Builder {
        let b = Request::builder().method(method);
        match self.proto {
            Proto::H1 => b.uri(path).header("host", "localhost"),
            Proto::H2 => b
                .uri(format!("https://localhost{path}"))
                .version(Version::HTTP_2),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut b = self.req("GET", path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    /// Sends one request on a fresh connection and reads the whole answer (30 s at most).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        tokio::time::timeout(Duration::from_secs(30), self.send_inner(req))
            .await
            .expect("the gateway did not answer within 30 s")
    }

    /// Sends any body on a fresh connection and returns the answer with its body unread.
    pub async fn send_streaming<B>(&self, req: Request<B>) -> http::Response<hyper::body::Incoming>
    where
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tls = self.tls().await;
        match self.proto {
            Proto::H1 => {
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                send.send_request(req).await.unwrap()
            }
            Proto::H2 => {
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                send.send_request(req).await.unwrap()
            }
        }
    }

    /// A keep-alive connection for sending many requests, in this client's protocol.
    pub async fn connect(&self) -> Conn {
        let io = TokioIo::new(self.tls().await);
        match self.proto {
            Proto::H1 => {
                let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Conn::H1(send)
            }
            Proto::H2 => {
                let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                Conn::H2(send)
            }
        }
    }

    async fn send_inner(&self, req: Request<Full<Bytes>>) -> Resp {
        let resp = self.send_streaming(req).await;
        let status = resp.status();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body,
            version,
        }
    }

    /// Writes `raw` over a fresh HTTP/1.1 TLS connection and returns what comes back until
    /// the gateway closes the connection or `wait` passes.
    pub async fn raw_h1(&self, raw: &[u8], wait: Duration) -> String {
        let mut tls = self.tls().await;
        tls.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}
