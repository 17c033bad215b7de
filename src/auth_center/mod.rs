//! The auth center (docs/contract.md, "Auth-center endpoints"): where sessions begin and end. Login, refresh,
//! logout, the session list, registration, forward-auth for nginx/Traefik and the JWKS
//! document, all under `auth.path` (the JWKS at `/.well-known/jwks.json`). Enabled by `[auth]`.
//!
//! Every answer but the JWKS document is JSON with `Cache-Control: no-store`; refusals go through
//! [`GatewayError`] like the rest of the gateway. Request bodies are capped at
//! [`MAX_BODY`] (413 above), must be declared `application/json` (415 otherwise) and unknown
//! JSON fields are refused (400). A call authenticated by a cookie that carries another site's
//! `Origin` is refused (403).
//!
//! Map: `login.rs`, `refresh.rs`, `sessions.rs` (logout, list, kick, sign out everywhere),
//! `register.rs`, `verify.rs`, `jwks.rs`; helpers `tokens.rs` (refresh tokens, minting, the
//! token answer), `cookies.rs`, `csrf.rs` (`Content-Type` and `Origin`), `users.rs`
//! (argon2id, usernames, user ids), `lockout.rs` (login limits).

mod cookies;
mod csrf;
mod jwks;
mod lockout;
mod login;
mod oidc;
mod refresh;
mod register;
mod sessions;
mod tokens;
pub mod users;
mod verify;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::auth::mint::Signer;
use crate::auth::{bearer, Authenticated, Authenticator};
use crate::config::{self, Config};
use crate::error::GatewayError;
use crate::http::body::{self, Body, Inbound};
use crate::identity_headers::IdentityNames;
use crate::routing::RouteTable;

pub use self::cookies::{DEVICE_COOKIE, LOGIN_COOKIE, REFRESH_COOKIE};
pub use self::lockout::{
    ADDRESS_LIMIT, OIDC_BEGIN_LIMIT, USERNAME_LIMIT, WINDOW as LOCKOUT_WINDOW,
};

/// Request bodies of the auth endpoints: at most 16 KiB (413 above).
pub const MAX_BODY: usize = 16 * 1024;

/// Where the JWKS document is served (at the root, whatever `auth.path` is).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the auth center shares with the rest of the gateway: the session check and the
/// store behind it, the identity header names and the route table (for `/verify`), the JWT
/// claim names it mints with, and the body idle timeout.
pub struct Deps {
    pub auth: Arc<Authenticator>,
    pub identity: IdentityNames,
    pub routes: Arc<RouteTable>,
    pub body_idle_timeout: Duration,
    /// `[headers] assertion`: `/verify` answers it too.
    pub asserter: Option<Arc<crate::auth::assertion::Asserter>>,
}

/// Why the auth center cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Key(#[from] crate::auth::jwt::KeyLoadError),
    #[error("the JWKS document: {0}")]
    Jwks(String),
    #[error("argon2: {0}")]
    Argon2(String),
}

pub struct AuthCenter {
    cfg: config::AuthCenter,
    /// The `[jwt]` table: the issuer, audience and claim names of minted tokens.
    jwt: config::Jwt,
    deps: Deps,
    signer: Arc<Signer>,
    /// The JWKS document, serialised once at start.
    jwks: Bytes,
    cookies: cookies::Cookies,
    hasher: users::Hasher,
    /// `[oidc]`: the provider, discovered at start.
    oidc: Option<oidc::Provider>,
}

impl std::fmt::Debug for AuthCenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCenter")
            .field("path", &self.cfg.path)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl AuthCenter {
    /// For the `[auth]` table `cfg` of `config`: loads the signing key, builds the JWKS
    /// document and the dummy password hash that unknown users are checked against.
    pub async fn new(
        cfg: &config::AuthCenter,
        config: &Config,
        signer: Arc<Signer>,
        deps: Deps,
    ) -> Result<AuthCenter, SetupError> {
        let cfg = cfg.clone();
        let jwks = jwks::document(&signer, &config.jwt).map_err(SetupError::Jwks)?;
        let cookies = cookies::Cookies::new(&cfg, config.jwt.cookie.as_deref());
        let hasher = users::Hasher::new()
            .await
            .map_err(|e| SetupError::Argon2(e.to_string()))?;
        let oidc = match &config.oidc {
            Some(o) => {
                Some(oidc::Provider::new(o, crate::auth::issuers::kept_claims(config)).await?)
            }
            None => None,
        };
        Ok(AuthCenter {
            cfg,
            jwt: config.jwt.clone(),
            deps,
            signer,
            jwks,
            cookies,
            hasher,
            oidc,
        })
    }

    /// How long a login session lives (`auth.refresh_ttl`).
    fn refresh_ttl(&self) -> Duration {
        self.cfg.refresh_ttl
    }

    /// True when `path` (normalised) belongs to the auth center rather than to a route:
    /// `auth.path` and everything under it, and the JWKS document.
    pub fn owns(&self, path: &str) -> bool {
        path == JWKS_PATH
            || under(&self.cfg.path, path).is_some()
            || self
                .oidc
                .as_ref()
                .is_some_and(|o| o.redirect_path() == path)
    }

    /// Answers one request; never fails (refusals become their JSON answer).
    pub async fn handle(
        &self,
        peer: SocketAddr,
        path: &str,
        req: Request<Inbound>,
    ) -> Response<Body> {
        let mut resp = match self.dispatch(peer, path, req).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::debug!(error = %err, "auth center refused");
                err.into_response()
            }
        };
        if !resp.headers().contains_key(CACHE_CONTROL) {
            resp.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        resp
    }

    /// Checks before any handler (after 405): a `POST` declares a JSON body or none (415),
    /// and a call that a cookie authenticates comes from no other origin (403).
    async fn dispatch(
        &self,
        peer: SocketAddr,
        path: &str,
        req: Request<Inbound>,
    ) -> Result<Response<Body>, GatewayError> {
        let gw = &self.deps;
        if path == JWKS_PATH {
            allow(&req, &[Method::GET, Method::HEAD])?;
            return Ok(jwks::answer(&self.jwks));
        }
        if let Some(provider) = &self.oidc {
            if path == provider.redirect_path() {
                allow(&req, &[Method::GET])?;
                return oidc::callback(self, provider, gw, peer, &req).await;
            }
        }
        let rel = under(&self.cfg.path, path).ok_or(GatewayError::NoRoute)?;
        match rel {
            oidc::LOGIN if self.oidc.is_some() => {
                allow(&req, &[Method::GET])?;
                let provider = self.oidc.as_ref().ok_or(GatewayError::NoRoute)?;
                oidc::begin(provider, gw, peer, &req).await
            }
            // A form body, as the standard fixes; no cookie, no Origin: the provider calls.
            oidc::BACKCHANNEL if self.oidc.is_some() => {
                allow(&req, &[Method::POST])?;
                let provider = self.oidc.as_ref().ok_or(GatewayError::NoRoute)?;
                oidc::backchannel_logout(provider, gw, req).await
            }
            "/login" => {
                allow(&req, &[Method::POST])?;
                login::login(self, gw, peer, req).await
            }
            "/refresh" => {
                allow(&req, &[Method::POST])?;
                csrf::content_type(req.headers())?;
                if !matches!(cookies::refresh_from(req.headers()), Ok(None)) {
                    csrf::same_origin(&req)?;
                }
                refresh::refresh(self, gw, peer, req).await
            }
            "/logout" => {
                allow(&req, &[Method::POST])?;
                csrf::content_type(req.headers())?;
                access_cookie_origin(gw, &req)?;
                sessions::logout(self, gw, req.headers()).await
            }
            "/sessions" => {
                allow(&req, &[Method::GET, Method::DELETE])?;
                access_cookie_origin(gw, &req)?;
                if req.method() == Method::GET {
                    sessions::list(gw, req.headers()).await
                } else {
                    sessions::delete_all(self, gw, req.headers()).await
                }
            }
            "/register" if self.cfg.registration => {
                allow(&req, &[Method::POST])?;
                register::register(self, gw, peer, req).await
            }
            // Forward-auth: nginx sends GET; Traefik may keep the original method.
            "/verify" => verify::verify(gw, req.headers()).await,
            other => match other.strip_prefix("/sessions/") {
                Some(sid) if !sid.is_empty() && !sid.contains('/') => {
                    allow(&req, &[Method::DELETE])?;
                    access_cookie_origin(gw, &req)?;
                    sessions::delete_one(gw, req.headers(), sid).await
                }
                _ => Err(GatewayError::NoRoute),
            },
        }
    }
}

/// The part of `path` after the prefix `base` ("" for `base` itself), on whole segments.
fn under<'p>(base: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// 405 with `Allow` unless the method is one of `methods`.
fn allow<B>(req: &Request<B>, methods: &[Method]) -> Result<(), GatewayError> {
    if methods.contains(req.method()) {
        return Ok(());
    }
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    Err(GatewayError::MethodNotAllowed {
        allow: HeaderValue::from_str(&list.join(", ")).ok(),
    })
}

/// 403 when the access token comes from the cookie (no `Authorization` header) and the
/// request names another origin. A bearer header is not a browser's doing: not checked.
fn access_cookie_origin<B>(gw: &Deps, req: &Request<B>) -> Result<(), GatewayError> {
    if bearer::cookie_borne(req.headers(), gw.auth.cookie()) {
        csrf::same_origin(req)?;
    }
    Ok(())
}

/// The client address for lockout and binding: `peer` is already the resolved client
/// (`client_addr::resolve`: the TCP peer, or behind `listen.trusted_proxies` the nearest
/// untrusted `X-Forwarded-For` address); a client's own forwarding headers are never read here.
fn client_ip(peer: SocketAddr) -> String {
    let ip: IpAddr = peer.ip().to_canonical();
    ip.to_string()
}

/// The address the login limit counts: the client's IPv4 address, or the /64 network of its
/// IPv6 address (one subscriber usually holds a whole /64, so counting per /128 would give
/// each of its 2^64 addresses a budget of its own).
fn lockout_address(peer: SocketAddr) -> String {
    match peer.ip().to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// The whole body, at most [`MAX_BODY`] bytes (413 above), within the body idle timeout.
async fn read_body(gw: &Deps, req: Request<Inbound>) -> Result<Bytes, GatewayError> {
    let idle = gw.body_idle_timeout;
    let collected = tokio::time::timeout(idle, Limited::new(req.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| GatewayError::BadRequest("body_timeout"))?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::BodyTooLarge),
        Err(_) => Err(GatewayError::BadRequest("body_unreadable")),
    }
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within the body idle timeout. The body
/// must be declared `application/json` (415 otherwise); an empty body reads as `{}` when
/// `empty_ok`, and only then may it come without a `Content-Type`. Unknown fields are refused
/// by the types themselves (`deny_unknown_fields`).
async fn read_json<T: DeserializeOwned>(
    gw: &Deps,
    req: Request<Inbound>,
    empty_ok: bool,
) -> Result<T, GatewayError> {
    let media = csrf::content_type(req.headers())?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(GatewayError::BodyTooLarge);
    }
    let bytes = read_body(gw, req).await?;
    if media == csrf::Declared::Nothing && !(bytes.is_empty() && empty_ok) {
        return Err(GatewayError::UnsupportedMediaType);
    }
    let bytes: &[u8] = if bytes.is_empty() && empty_ok {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().starts_with("unknown field") {
            GatewayError::BadRequest("unknown_field")
        } else {
            GatewayError::BadRequest("invalid_json")
        }
    })
}

/// The caller of a session endpoint: a valid access token of the gateway's own whose
/// session is live.
struct Caller {
    who: Authenticated,
    sid: String,
}

impl Caller {
    fn user_id(&self) -> &str {
        self.who.user_id()
    }
}

async fn caller(gw: &Deps, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let who = crate::auth::authorize::signed_in(&gw.auth, headers).await?;
    // The gateway's own tokens always name a session; refused, never assumed.
    let sid = who
        .session_id()
        .ok_or(crate::auth::AuthError::Invalid("no_session"))?
        .to_owned();
    Ok(Caller { who, sid })
}

/// A JSON answer.
fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    body::json(status, value)
}

fn no_content() -> Response<Body> {
    body::status(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_matches_whole_segments() {
        assert_eq!(under("/auth", "/auth"), Some(""));
        assert_eq!(under("/auth", "/auth/login"), Some("/login"));
        assert_eq!(under("/auth", "/authx"), None);
        assert_eq!(under("/auth", "/api/auth"), None);
    }

    #[test]
    fn allow_lists_methods() {
        let req = Request::builder().method("GET").body(()).unwrap();
        assert!(allow(&req, &[Method::GET]).is_ok());
        match allow(&req, &[Method::POST, Method::DELETE]) {
            Err(GatewayError::MethodNotAllowed { allow: Some(v) }) => {
                assert_eq!(v, "POST, DELETE")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_lockout_counts_ipv6_per_64() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6".parse().unwrap();
        assert_eq!(lockout_address(a), "2001:db8:1:2::/64");
        assert_eq!(lockout_address(a), lockout_address(b));
        assert_eq!(
            lockout_address("[::ffff:10.0.0.1]:5".parse().unwrap()),
            "10.0.0.1"
        );
    }

    #[test]
    fn client_ip_unmaps_v4() {
        let peer: SocketAddr = "[::ffff:10.0.0.1]:5".parse().unwrap();
        assert_eq!(client_ip(peer), "10.0.0.1");
        assert_eq!(client_ip("[::1]:5".parse().unwrap()), "::1");
    }
}
