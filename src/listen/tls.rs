//! The TLS listener: connections from the shared accept loop, the PROXY header (with
//! `listen.proxy_protocol`) and the TLS handshake under one deadline, HTTP/1.1 and HTTP/2 by
//! ALPN with every hyper bound set (timer, header read timeout, a backstop on header size and
//! count, concurrent streams), a connection with no request closed (`idle`), and the shutdown
//! drain (GOAWAY for HTTP/2, a linger with `Connection: close` for HTTP/1.1). Request bodies
//! are `body::Inbound` (an HTTP/2 one dropped unread is drained). Open connections and
//! handshake results are counted in `metrics`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::idle::Activity;
use super::{accept_loop, http_builder};
use crate::config::{Limits, Listen};
use crate::http::body::{Body, Inbound};
use crate::observe::metrics::{Handshake, Metrics};

/// What the TLS listener serves, asked per connection (a reload swaps what it answers): the
/// certificate for a new connection, the metrics it counts in, whether the drain began, and
/// the answer to a request.
pub trait Site: Send + Sync + 'static {
    fn tls(&self) -> Arc<rustls::ServerConfig>;
    fn metrics(&self) -> Arc<Metrics>;
    /// True once shutdown began: HTTP/1.1 answers then carry `Connection: close`.
    fn draining(&self) -> bool;
    /// Answers one request from `peer` (the TCP peer, or the PROXY header's source). It takes
    /// the site by value (an `Arc`), so the answer borrows nothing from the connection.
    fn serve(
        site: Arc<Self>,
        peer: SocketAddr,
        req: Request<Inbound>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// What every connection of the TLS listener shares. `[limits]` and `[listen]` take effect on
/// restart only, so the first config's are the ones in force.
struct Shared<S> {
    site: Arc<S>,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    listen: Listen,
}

/// Serves TLS connections on `listener` until `shutdown`, then drains them.
pub async fn serve<S: Site>(
    site: Arc<S>,
    limits: Limits,
    listen: Listen,
    listener: Arc<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        builder: http_builder(&limits),
        limits,
        listen,
        site,
    });
    // HTTP/1.1 and HTTP/2 connections drain differently (see `drain_tls`).
    let (h1, h2) = (Drain::new(), Drain::new());
    let max = shared.limits.max_connections;
    accept_loop(&listener, max, &mut shutdown, |tcp, tcp_peer, permit| {
        let _ = tcp.set_nodelay(true);
        let watchers = (h1.watcher(), h2.watcher());
        let shared = shared.clone();
        tokio::spawn(async move {
            let open = shared.site.metrics().connection_opened();
            let Some((tls, peer)) = handshake(&shared, tcp, tcp_peer).await else {
                return;
            };
            // The rest of the connection's life is a task of its own: the handshake's state
            // (rustls' handshake, the PROXY header reader, their deadline) ends with this
            // one instead of staying in every open connection's task (memory per idle
            // connection: bench/connections.sh). The stream is boxed so that it is held
            // once, not also as the new task's argument.
            let tls = Box::new(tls);
            tokio::spawn(async move {
                let _permit = permit;
                let _open = open;
                serve_http(&shared, tls, peer, watchers).await;
            });
        });
    })
    .await;
    drop(listener);
    drain_tls(h1, h2, &shared.limits).await;
}

/// How long an idle connection told to go away (HTTP/2 GOAWAY) may take to close.
const IDLE_GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// The PROXY header (if any) and the TLS handshake, together within the header deadline.
/// Counted in the metrics whatever the outcome.
async fn handshake<S: Site>(
    shared: &Shared<S>,
    mut tcp: TcpStream,
    tcp_peer: SocketAddr,
) -> Option<(TlsStream, SocketAddr)> {
    let limits = &shared.limits;
    let metrics = shared.site.metrics();
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    let peer = if shared.listen.proxy_protocol {
        match proxy_peer(&mut tcp, tcp_peer, &shared.listen, deadline).await {
            Ok(peer) => peer,
            Err(outcome) => {
                metrics.observe_handshake(outcome);
                return None;
            }
        }
    } else {
        tcp_peer
    };
    // The certificate is the one current when the connection came.
    let acceptor = TlsAcceptor::from(shared.site.tls());
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            metrics.observe_handshake(Handshake::Ok);
            Some((tls, peer))
        }
        Ok(Err(e)) => {
            metrics.observe_handshake(Handshake::Failed);
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.observe_handshake(Handshake::TimedOut);
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// The client's TLS stream once the handshake is done.
type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// HTTP on an established TLS connection until it ends, the drain begins, or it carries no
/// request for too long.
async fn serve_http<S: Site>(
    shared: &Shared<S>,
    tls: Box<TlsStream>,
    peer: SocketAddr,
    (h1_watcher, h2_watcher): (watch::Receiver<bool>, watch::Receiver<bool>),
) {
    let limits = &shared.limits;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let site = shared.site.clone();
    let svc = service_fn(move |req| {
        // In flight until the response body is done (or dropped).
        let in_flight = requests.begin();
        let req = Inbound::wrap(req);
        let answer = S::serve(site.clone(), peer, req);
        let site = site.clone();
        // Boxed: hyper keeps a slot for the answer's future with every connection, as large
        // as the future; a box keeps that slot a pointer, so an idle connection does not
        // hold a request's worth of state (its memory is counted per idle connection).
        Box::pin(async move {
            let mut resp = answer.await;
            in_flight.progressed();
            let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if !h2 && !upgrade && site.draining() {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            let resp = resp.map(|b| {
                b.map_frame(move |f| {
                    in_flight.progressed();
                    f
                })
                .boxed_unsync()
            });
            Ok::<_, Infallible>(resp)
        })
    });
    // Boxed, so that the task holds a pointer, not a second copy of the connection's state.
    let mut conn = Box::pin(
        shared
            .builder
            .serve_connection_with_upgrades(TokioIo::new(tls), svc),
    );
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
    let idle = activity.idle(limits.header_timeout, limits.idle_timeout);
    let idle_shutdown = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = activity.stalled(limits.body_idle_timeout) => {
            // A client that does not take its answers: closed, whatever else is in flight.
            tracing::debug!(peer = %peer, "an answer made no progress within body_idle_timeout; closed");
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
