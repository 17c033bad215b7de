//! The TLS listener: accept loop under a connection limit, TLS handshake under a deadline,
//! HTTP/1.1 and HTTP/2 by ALPN with every hyper bound set (timer, header read timeout, header
//! size and count, concurrent streams), and the shutdown drain (GOAWAY for HTTP/2, a linger
//! with `Connection: close` for HTTP/1.1). Open connections and
//! handshake results are counted in `metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::Limits;
use crate::gateway::Live;
use crate::metrics::Handshake;

/// The hyper connection builder with every bound of `[limits]` applied.
pub fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        // Without a timer, hyper's header read timeout silently does nothing (slowloris).
        .timer(TokioTimer::new())
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_pending_accept_reset_streams(Some(50))
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Waits until the shutdown flag turns true (or its sender is gone).
pub async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub async fn serve_tls(
    live: Arc<Live>,
    listener: Arc<TcpListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    // `[limits]` take effect on restart only, so the first config's are the ones in force.
    let limits = live.get().config.limits.clone();
    let builder = Arc::new(http_builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // HTTP/1.1 and HTTP/2 connections drain differently (see `drain_tls`).
    let (h1, h2) = (GracefulShutdown::new(), GracefulShutdown::new());
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        let (tcp, peer) = tokio::select! {
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
        let builder = builder.clone();
        let live = live.clone();
        // The certificate is the one current when the connection came.
        let gw = live.get();
        let acceptor = TlsAcceptor::from(gw.tls.clone());
        let (h1_watcher, h2_watcher) = (h1.watcher(), h2.watcher());
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _open = gw.metrics.connection_opened();
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
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
            let svc = service_fn(move |req| {
                let live = live.clone();
                async move {
                    let mut resp = crate::proxy::handle(live.get(), peer, req).await;
                    let upgrade = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    if !h2 && !upgrade && live.draining() {
                        resp.headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .into_owned();
            // Drop the other group's watcher now: it would count this connection there.
            let watcher = if h2 {
                drop(h1_watcher);
                h2_watcher
            } else {
                drop(h2_watcher);
                h1_watcher
            };
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain_tls(h1, h2, &limits).await;
}

/// HTTP/2 connections get GOAWAY at once: the protocol tells clients which streams were
/// taken, so none is lost. HTTP/1.1 has no such signal: closing an idle keep-alive connection
/// races a client sending its next request on it. So for `drain_linger` HTTP/1.1 connections
/// are still served, every response saying `Connection: close` (clients then reconnect, to
/// the new process after a hand-over); the ones still open after that are closed gracefully.
/// All within `shutdown_grace`.
async fn drain_tls(h1: GracefulShutdown, h2: GracefulShutdown, limits: &Limits) {
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
