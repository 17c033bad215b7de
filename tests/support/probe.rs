//! Upstreams built to observe what an attack managed to push through the gateway:
//! [`Probe`] reads every request body to its end (recording how many bytes came and whether
//! the body ended cleanly) and tracks the peak number of requests in flight; [`Switcher`] is
//! a raw TCP server that answers `101 Switching Protocols` to anything that asks for an
//! upgrade and then talks raw bytes, like an h2c- or WebSocket-capable backend would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The body ended without an error (it was forwarded whole, as far as framing goes).
    pub body_complete: bool,
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

pub struct Probe {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// Each request is held `hold` after its body ended, then answered 200.
    pub async fn start(hold: Duration) -> Probe {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<State> = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(serve(req, st, hold).await) }
                    });
                    // Accept as much as a lenient backend would, so that what the gateway
                    // lets through is seen here rather than refused by hyper's defaults.
                    let mut b = auto::Builder::new(TokioExecutor::new());
                    b.http1().max_headers(2000).max_buf_size(1 << 20);
                    let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Probe { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }

    /// The most requests that were being served at once.
    pub fn peak(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(req: Request<Incoming>, st: Arc<State>, hold: Duration) -> Response<Full<Bytes>> {
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.peak.fetch_max(now, Ordering::SeqCst);
    let (parts, mut body) = req.into_parts();
    let mut len = 0;
    let mut complete = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => len += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    st.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body_len: len,
        body_complete: complete,
    });
    tokio::time::sleep(hold).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    Response::new(Full::new(Bytes::from(format!("{{\"len\":{len}}}"))))
}

/// A backend that honours any `Upgrade` it is offered: `101`, then `TUNNEL-OPEN\n`, then
/// it echoes. Requests without `Upgrade` get a plain 200.
pub struct Switcher {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Switcher {
    pub async fn start() -> Switcher {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let h2 = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                let heads = h2.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = tcp.read(&mut chunk).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let head = String::from_utf8_lossy(&buf).into_owned();
                        heads.lock().unwrap().push(head.clone());
                        let upgrade = head.lines().find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.trim().eq_ignore_ascii_case("upgrade").then(|| v.trim().to_owned())
                        });
                        match upgrade {
                            Some(proto) => {
                                let resp = format!(
                                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {proto}\r\n\r\nTUNNEL-OPEN\n"
                                );
                                tcp.write_all(resp.as_bytes()).await?;
                                let (mut r, mut w) = tcp.split();
                                tokio::io::copy(&mut r, &mut w).await?;
                            }
                            None => {
                                tcp.write_all(
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                                )
                                .await?;
                            }
                        }
                        Ok(())
                    })
                    .await;
                });
            }
        });
        Switcher { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head received, as text.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
