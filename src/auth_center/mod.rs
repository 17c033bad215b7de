//! The auth center (CONTRACT.md section 5): login, refresh, logout, sessions, register,
//! forward-auth and the JWKS document. Enabled by the `[auth]` table.

use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::Config;
use crate::gateway::{Gateway, StartError};

pub struct AuthCenter {
    path: String,
}

impl AuthCenter {
    pub async fn new(config: &Config) -> Result<Option<AuthCenter>, StartError> {
        Ok(config.auth.as_ref().map(|a| AuthCenter {
            path: a.path.clone(),
        }))
    }

    /// True when `path` (normalised) belongs to the auth center rather than to a route.
    pub fn owns(&self, path: &str) -> bool {
        let _ = &self.path;
        let _ = path;
        false
    }

    pub async fn handle(
        &self,
        gw: &Gateway,
        peer: SocketAddr,
        path: &str,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let _ = (gw, peer, path, req);
        crate::error::GatewayError::NoRoute.into_response()
    }
}
