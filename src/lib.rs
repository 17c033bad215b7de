//! gateway: a TLS-terminating reverse proxy that authenticates every request, and the small
//! auth center that issues its tokens.
//!
//! # Map (arrows go one way: each module uses only those listed after it)
//! - `cli/`: the commands (`serve`, `check`, `token`, `keygen`, `user add`); `main.rs` only
//!   calls it. `cli/keygen.rs` writes development keys, `cli/admin_client.rs` talks to the
//!   admin listener (the memory store's sessions for `gateway token`).
//! - `app/`: the composition root, the only module that knows every part. `App` is built
//!   from a `Config` (the proxy, the admin answers, the certificate); `Live` holds the current
//!   one (swapped whole on reload); `bind.rs` binds the listeners and runs them, `reload.rs`
//!   (SIGHUP, watched files, `files.rs`) and `restart.rs` (socket hand-over, systemd).
//! - `listen/`: the listeners, knowing nothing above them: one accept loop (permits, backoff,
//!   shutdown) for the TLS, redirect, admin and demo listeners; `tls.rs` (PROXY header,
//!   handshake, hyper's bounds, idle close, drain) serves a `tls::Site`; `plain.rs` serves a
//!   handler; `certs.rs` (PEM -> rustls), `idle.rs`, `proxy_protocol.rs`.
//! - `proxy/`: the TLS listener's answer. `Proxy` (its state), `handle` (access log, metrics,
//!   span), `pipeline.rs` (the steps, in order), `upstream.rs` (the request the upstream
//!   sees), `forward.rs` (pooled client, 502/504), `upgrade.rs` (WebSocket tunnels, closed
//!   when their session ends).
//! - `admin/`: the admin listener (probes, `/metrics`, session administration) and the
//!   redirect listener's answers.
//! - `auth_center/`: login, refresh rotation, logout, sessions, registration, `/verify`, the
//!   JWKS document, under `auth.path`; over its own `Deps`.
//! - `demo.rs`: the quick start's echo upstream.
//! - `error.rs`: every refusal -> one status and the one JSON answer shape.
//! - `identity_headers.rs`: strip every spelling; set only from an `auth::Authenticated`.
//! - `routing.rs`: longest whole-segment prefix route for a host.
//! - `auth/`: the token (`bearer.rs`), JWT verification (`jwt/`), the session store
//!   (`session/`: Redis and memory) and its coherent cache, the verified-token cache;
//!   `authorize.rs`, the one access policy (auth mode, roles) the proxy and `/verify` share.
//!   Only `auth` can build an `Authenticated`.
//! - `observe/`: metrics (label values only), OTLP spans, logs.
//! - `http/`: protocol helpers: bodies (and the JSON answer), one valid `Host`, one canonical
//!   path, hop-by-hop headers, request ids, trace context, the client's address, header limits.
//! - `config/`: gateway.toml -> validated types, every mistake at `file:line:col`.
//! - `clock.rs`: unix seconds, once.
//!
//! # Life of a request on the TLS listener (`listen::tls` -> `proxy`)
//! 1. Accepted under the connection cap; PROXY header (if configured) and TLS handshake within
//!    `limits.header_timeout`; HTTP/1.1 or HTTP/2 by ALPN, with hyper's header backstop.
//! 2. Headers over `[limits]`: 431. Host: exactly one valid (`:authority` and `Host` agree),
//!    else 400. Path normalised (`http::path`); ambiguous: 400.
//! 3. Under `auth.path` (or the JWKS path): the auth center answers (login, refresh, logout,
//!    sessions, registration, `/verify`), with its own 405/413/415/403 and lockout 429.
//! 4. Route: longest whole-segment prefix for the host; none: 404; method not listed: 405.
//! 5. Hop-by-hop headers (and what `Connection` names) removed, then every spelling of every
//!    identity header: the client can never set them.
//! 6. `auth::authorize`: token (bearer or cookie) -> JWT (algorithm pinned by key) -> session
//!    in the store, by the route's auth mode; no token: 401 (or none needed on
//!    `optional`/`public`); bad: 401; store down: 503; roles not held: 403.
//! 7. A declared body over the route's limit: 413 (a streamed one is cut at it).
//! 8. The upstream request: identity headers from `Authenticated` only, `X-Forwarded-*`,
//!    `X-Request-Id`, the token stripped; forwarded with streaming bodies; 502 refused, 504
//!    slow. A WebSocket upgrade becomes a tunnel that closes when its session ends.
//! 9. Every answer: `X-Request-Id`, metrics, one access-log line, a span with `[otlp]`. An
//!    HTTP/2 body the answer did not need is drained (bounded), so the stream ends cleanly.
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
