//! The TLS listener: accept loop under a connection limit, the PROXY header (with
//! `listen.proxy_protocol`) and the TLS handshake under one deadline, HTTP/1.1 and HTTP/2 by
//! ALPN with every hyper bound set (timer, header read timeout, a backstop on header size and
//! count, concurrent streams), a connection with no request closed (`idle`), and the shutdown
//! drain (GOAWAY for HTTP/2, a linger with `Connection: close` for HTTP/1.1). Request bodies
//! are `body::Inbound` (an HTTP/2 one dropped unread is drained). Open connections and
//! handshake results are counted in `metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{Limits, Listen};
use crate::app::Live;
use crate::listen::idle::Activity;
use crate::observe::metrics::Handshake;

/// The hyper connection builder with every bound of `[limits]` applied. The header bounds
/// given to hyper and h2 are the looser backstop (`header_limits::backstop`): the pipeline
/// checks `[limits]` itself, so that a request over them gets the gateway's JSON 431.
pub fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let backstop = crate::http::header_limits::backstop(limits);
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        // Without a timer, hyper's header read timeout silently does nothing (slowloris).
        .timer(TokioTimer::new())
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_timeout)
        .max_headers(backstop.fields)
        // The whole head (request line and headers) must fit in the read buffer.
        .max_buf_size(backstop.bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        // Also what SETTINGS_MAX_HEADER_LIST_SIZE tells clients (h2 counts 32 bytes a field).
        .max_header_list_size(u32::try_from(backstop.bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(50))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Waits until the shutdown flag turns true (or its sender is gone).
pub async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// What every connection of the TLS listener shares. `[limits]` and `[listen]` take effect on
/// restart only, so the first config's are the ones in force.
struct Shared {
    live: Arc<Live>,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    listen: Listen,
}

pub async fn serve_tls(
    live: Arc<Live>,
    listener: Arc<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let first = live.get().config.clone();
    let shared = Arc::new(Shared {
        builder: http_builder(&first.limits),
        limits: first.limits,
        listen: first.listen,
        live,
    });
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    // HTTP/1.1 and HTTP/2 connections drain differently (see `drain_tls`).
    let (h1, h2) = (Drain::new(), Drain::new());
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        let (tcp, tcp_peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        let _ = tcp.set_nodelay(true);
        let watchers = (h1.watcher(), h2.watcher());
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(&shared, tcp, tcp_peer, watchers).await;
        });
    }
    drop(listener);
    drain_tls(h1, h2, &shared.limits).await;
}

/// How long an idle connection told to go away (HTTP/2 GOAWAY) may take to close.
const IDLE_GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// One client connection: PROXY header, TLS, then HTTP until it ends, the drain begins, or
/// it carries no request for too long.
async fn serve_connection(
    shared: &Shared,
    mut tcp: TcpStream,
    tcp_peer: SocketAddr,
    (h1_watcher, h2_watcher): (watch::Receiver<bool>, watch::Receiver<bool>),
) {
    let limits = &shared.limits;
    // The certificate is the one current when the connection came.
    let gw = shared.live.get();
    let _open = gw.metrics.connection_opened();
    // The PROXY header (if any) and the TLS handshake, together within the deadline.
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    let peer = if shared.listen.proxy_protocol {
        match proxy_peer(&mut tcp, tcp_peer, &shared.listen, deadline).await {
            Ok(peer) => peer,
            Err(outcome) => {
                gw.metrics.observe_handshake(outcome);
                return;
            }
        }
    } else {
        tcp_peer
    };
    let acceptor = TlsAcceptor::from(gw.tls.clone());
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            gw.metrics.observe_handshake(Handshake::Ok);
            tls
        }
        Ok(Err(e)) => {
            gw.metrics.observe_handshake(Handshake::Failed);
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            gw.metrics.observe_handshake(Handshake::TimedOut);
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    drop(gw);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let live = shared.live.clone();
    let svc = service_fn(move |req| {
        let live = live.clone();
        // In flight until the response body is done (or dropped).
        let in_flight = requests.begin();
        async move {
            let req = crate::http::body::Inbound::wrap(req);
            let mut resp = crate::proxy::handle(live.get(), peer, req).await;
            let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if !h2 && !upgrade && live.draining() {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
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
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(tls), svc);
    // Drop the other group's watcher now: it would count this connection there.
    let mut drain = if h2 {
        drop(h1_watcher);
        h2_watcher
    } else {
        drop(h2_watcher);
        h1_watcher
    };
    // Shut down gracefully (HTTP/2 GOAWAY; HTTP/1 closes once idle) when the drain begins
    // or when no request has come for too long (`idle`); after an idle shutdown nothing is in
    // flight, so a peer that does not answer the GOAWAY's PING gets one more second, not a
    // second header_timeout (a silent HTTP/2 client is closed within header_timeout + 1 s).
    let mut conn = std::pin::pin!(conn);
    let idle = activity.idle(limits.header_timeout, limits.idle_timeout);
    let idle_shutdown = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = drain.wait_for(|stop| *stop) => false,
        _ = idle => true,
    };
    if idle_shutdown && !activity.any_began() {
        // Never a request in header_timeout: nothing to tell it, closed now (within the
        // header timeout, like a half-sent head).
        tracing::debug!(peer = %peer, "no request within header_timeout; closed");
        return;
    }
    conn.as_mut().graceful_shutdown();
    let r = if idle_shutdown {
        tokio::time::timeout(IDLE_GOAWAY_GRACE.min(limits.header_timeout), conn)
            .await
            .unwrap_or(Ok(()))
    } else {
        conn.await
    };
    if let Err(e) = r {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// With `listen.proxy_protocol`: the PROXY header's source (or the TCP peer for a LOCAL
/// header), read before TLS from a peer in `trusted_proxies`. Anything else closes the
/// connection, counted as a failed (or timed out) handshake.
async fn proxy_peer(
    tcp: &mut TcpStream,
    tcp_peer: SocketAddr,
    listen: &Listen,
    deadline: tokio::time::Instant,
) -> Result<SocketAddr, Handshake> {
    if !listen.trusted_proxies.contains(tcp_peer.ip()) {
        tracing::debug!(peer = %tcp_peer, "PROXY protocol from a peer not in trusted_proxies");
        return Err(Handshake::Failed);
    }
    match tokio::time::timeout_at(deadline, crate::listen::proxy_protocol::read(tcp)).await {
        Ok(Ok(h)) => Ok(h.source.unwrap_or(tcp_peer)),
        Ok(Err(e)) => {
            tracing::debug!(peer = %tcp_peer, error = %e, "PROXY header refused");
            Err(Handshake::Failed)
        }
        Err(_) => {
            tracing::debug!(peer = %tcp_peer, "PROXY header timed out");
            Err(Handshake::TimedOut)
        }
    }
}

/// A group of connections to drain together: each holds a watcher until it ends.
struct Drain {
    tx: watch::Sender<bool>,
}

impl Drain {
    fn new() -> Self {
        Drain {
            tx: watch::Sender::new(false),
        }
    }

    fn watcher(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Connections still open.
    fn count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Tells every connection to shut down gracefully and waits until all have ended.
    async fn shutdown(self) {
        self.tx.send_replace(true);
        self.tx.closed().await;
    }
}

/// HTTP/2 connections get GOAWAY at once: the protocol tells clients which streams were
/// taken, so none is lost. HTTP/1.1 has no such signal: closing an idle keep-alive connection
/// races a client sending its next request on it. So for `drain_linger` HTTP/1.1 connections
/// are still served, every response saying `Connection: close` (clients then reconnect, to
/// the new process after a hand-over); the ones still open after that are closed gracefully.
/// All within `shutdown_grace`.
async fn drain_tls(h1: Drain, h2: Drain, limits: &Limits) {
    let start = tokio::time::Instant::now();
    let linger_end = start + limits.drain_linger.min(limits.shutdown_grace);
    let h2_done = tokio::spawn(h2.shutdown());
    while h1.count() > 0 && tokio::time::Instant::now() < linger_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = async {
        h1.shutdown().await;
        let _ = h2_done.await;
    };
    tokio::select! {
        _ = all => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep_until(start + limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing the rest");
        }
    }
}

/// Tells every connection to finish its in-flight requests and close, for at most `grace`.
pub async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing the rest"),
    }
}
