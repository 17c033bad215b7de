//! The listeners: one accept loop (connection permits, backoff, shutdown) that the TLS, the
//! plain (redirect, admin) and the demo listeners all use, the TLS connection (PROXY header,
//! handshake, hyper's bounds, idle close, drain), and the plain-HTTP connection.

pub mod certs;
pub mod idle;
pub mod plain;
pub mod proxy_protocol;
pub mod tls;
