//! A real upstream HTTP server on a free loopback port that records every request it gets
//! and behaves by path: `/slow/*` waits 3 s, `/reset` cuts its body mid-way, `/echo-body`
//! streams the request body back, `/big/N` streams N bytes, `/ws` is a WebSocket echo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
}

impl Recorded {
    /// Every value of `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
    pub fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} arrived {} times: {all:?}",
            all.len()
        );
        all.into_iter().next()
    }
    /// Header names as they arrived (lower-case), for spotting any spelling.
    pub fn names(&self) -> Vec<String> {
        self.headers.keys().map(|k| k.as_str().to_owned()).collect()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_with(false).await
    }

    /// `h2c`: serve HTTP/2 with prior knowledge only.
    pub async fn start_with(h2c: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = log2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(respond(req, log).await) }
                    });
                    let mut b = auto::Builder::new(TokioExecutor::new());
                    if h2c {
                        b = b.http2_only();
                    }
                    let _ = b
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Upstream { addr, log, task }
    }

    /// An address where nothing listens (bound then closed).
    pub async fn refused_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn respond(mut req: Request<Incoming>, log: Arc<Mutex<Vec<Recorded>>>) -> Response<Body> {
    let rec = Recorded {
        method: req.method().to_string(),
        target: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        version: req.version(),
        headers: req.headers().clone(),
    };
    log.lock().unwrap().push(rec);
    let path = req.uri().path().to_owned();
    if path.starts_with("/slow") || path.contains("/slow/") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/reset") {
        // Promise 1000 bytes, send 10, then fail: the client must see a truncated message.
        // The pause lets the head and the first bytes reach the gateway before the reset.
        let stream = futures_util::stream::unfold(0u8, |step| async move {
            match step {
                0 => Some((
                    Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"0123456789"))),
                    1,
                )),
                1 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Err::<Frame<Bytes>, BoxError>("upstream reset".into()), 2))
                }
                _ => None,
            }
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, "1000".parse().unwrap());
        return resp;
    }
    if path.ends_with("/echo-body") {
        let body = req.into_body().map_err(|e| Box::new(e) as BoxError).boxed();
        return Response::new(body);
    }
    if let Some(n) = path
        .rsplit_once("/big/")
        .and_then(|(_, n)| n.parse::<u64>().ok())
    {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = n / chunk.len() as u64;
        let stream = futures_util::stream::iter(0..chunks)
            .map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone())));
        return Response::new(BodyExt::boxed(StreamBody::new(stream)));
    }
    if path.ends_with("/ws") {
        return websocket(&mut req);
    }
    if path.ends_with("/set-cookies") {
        // A backend trying to plant the gateway's own cookies (login CSRF, fixation).
        let mut resp = Response::new(full("ok"));
        for c in [
            "__Host-gw_oidc=planted; Path=/; Secure; HttpOnly; SameSite=Lax",
            "__host-GW_oidc=planted; Path=/; Secure",
            "__Host-gw_access=planted; Path=/; Secure; HttpOnly",
            "__Secure-gw_refresh=planted; Path=/auth; Secure",
            "__Host-gw_device=planted; Path=/; Secure",
            "app_pref=dark; Path=/",
        ] {
            resp.headers_mut()
                .append(http::header::SET_COOKIE, c.parse().unwrap());
        }
        return resp;
    }
    if path.ends_with("/set-identity") {
        let mut resp = Response::new(full("ok"));
        resp.headers_mut()
            .insert("x-user-id", "from-upstream".parse().unwrap());
        resp.headers_mut()
            .insert("connection", "x-foo".parse().unwrap());
        resp.headers_mut().insert("x-foo", "hop".parse().unwrap());
        return resp;
    }
    let mut resp = Response::new(full(r#"{"ok":true}"#));
    *resp.status_mut() = StatusCode::OK;
    resp
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut r = Response::new(full("not a websocket request"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    resp
}
