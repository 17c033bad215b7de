//! gateway: a TLS-terminating reverse proxy that authenticates every request.
//!
//! # Map
//! - `config/`: gateway.toml -> validated types (`config::Config`).
//! - `gateway.rs`: shared state built from the config (`Live`: swapped whole on reload);
//!   binds listeners and runs them.
//! - `reload.rs`: SIGHUP / watched-file reload; `restart.rs`: socket hand-over to a new
//!   process (SIGUSR2), systemd `LISTEN_FDS` and `READY=1`.
//! - `server.rs`: TLS accept loop, connection limit, hyper bounds, shutdown drain.
//! - `tls.rs`: PEM -> rustls config (ALPN h2/http1.1, resumption, no 0-RTT).
//! - `proxy.rs`: the request pipeline, one step per function.
//! - `path.rs`, `routing.rs`: one canonical path; longest whole-segment prefix route.
//! - `header_limits.rs`: the request header bounds (431), and hyper's looser backstop.
//! - `hop_by_hop.rs`, `identity_headers.rs`: strip, then set only from `Authenticated`.
//! - `client_addr.rs`: the client's address (`listen.trusted_proxies`) and the forwarding
//!   headers sent upstream; `proxy_protocol.rs`: PROXY v1/v2 before TLS; `host.rs`: one valid
//!   `Host`; `idle.rs`: connections that carry no request are closed.
//! - `auth/`: bearer token, JWT verification, session store; builds `Authenticated`.
//! - `forward.rs`, `upgrade.rs`, `body.rs`: pooled upstream client, WebSocket splice, bounded
//!   streaming bodies; an HTTP/2 request body answered before it was read is drained.
//! - `plain.rs`, `admin_sessions.rs`: redirect and admin listeners (`/metrics` too).
//! - `metrics.rs`: Prometheus metrics; `trace_context.rs`: W3C `traceparent` / `tracestate`;
//!   `otlp.rs`: a span per request, exported over OTLP/HTTP.
//! - `error.rs`: every refusal -> one status and JSON body.
//!
//! # Life of a request (TLS listener)
//! 1. TLS handshake within `limits.header_timeout`; HTTP/1.1 or HTTP/2 by ALPN.
//! 2. Headers over `limits.max_header_bytes` or `limits.max_headers`: 431 (JSON, counted).
//!    Host: exactly one (`:authority` and `Host` agree), else 400.
//! 3. Path normalised (`path::normalise`); ambiguous: 400.
//! 4. Route: longest whole-segment prefix for the host; none: 404; method not listed: 405.
//! 5. Hop-by-hop headers (and what `Connection` names) removed, then every spelling of every
//!    identity header: the client can never set them.
//! 6. Token (bearer or cookie) -> JWT (algorithm pinned by key) -> session in the store.
//!    No token: 401 (or anonymous on `optional`/`public`); bad: 401; store down: 503.
//! 7. Roles (the session's, else the token's) against the route's: 403.
//! 8. Identity headers set from `Authenticated`; X-Forwarded-*, X-Request-Id; forwarded with
//!    streaming bodies; 502 when refused, 504 when slow.
#![forbid(unsafe_code)]

/// mimalloc: the request path allocates many small, short-lived buffers (headers, URIs,
/// futures); glibc's malloc was about 8% of the gateway's CPU in a profile under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod app;
pub mod auth;
pub mod auth_center;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod identity_headers;
pub mod listen;
pub mod observe;
pub mod proxy;
pub mod routing;
