//! Test support shared by the integration tests: real processes on ephemeral ports.
#![allow(dead_code)]

pub mod admin;
pub mod auth;
pub mod client;
pub mod curl;
pub mod forge;
pub mod gateway;
pub mod logs;
pub mod oidc;
pub mod probe;
pub mod redis;
pub mod sso;
pub mod upstream;
