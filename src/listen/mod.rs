//! The listeners: one accept loop ([`accept_loop`]: connection permits, backoff, shutdown)
//! that the TLS, the plain (redirect, admin) and the demo listeners all use; the hyper builder
//! with every bound of `[limits]`; the TLS connection (`tls.rs`: PROXY header, handshake, idle
//! close, drain) and the plain-HTTP connection (`plain.rs`). What a listener serves is given
//! to it (a [`tls::Site`], a handler): nothing here knows the proxy or the admin answers.

pub mod certs;
pub mod idle;
pub mod plain;
pub mod proxy_protocol;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// How long the loop waits after a failed accept (EMFILE and friends) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown`, with at most `max_connections` open at
/// once (more wait in the kernel's backlog; a neighbour's idle sockets cannot pile up), and
/// hands each to `serve` with its permit, which the connection holds until it ends. An accept
/// error backs off instead of spinning.
pub async fn accept_loop<F>(
    listener: &TcpListener,
    max_connections: usize,
    shutdown: &mut watch::Receiver<bool>,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
{
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown_signalled(shutdown) => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown_signalled(shutdown) => return,
        };
        serve(tcp, peer, permit);
    }
}

/// Waits until the shutdown flag turns true (or its sender is gone).
pub async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

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

/// Tells every connection to finish its in-flight requests and close, for at most `grace`.
pub async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing the rest"),
    }
}
