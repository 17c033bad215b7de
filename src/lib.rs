//! gateway: a TLS-terminating reverse proxy that authenticates every request.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod hop_by_hop;
pub mod identity_headers;
pub mod keygen;
pub mod path;
pub mod routing;
