//! The signed identity assertion (`[headers] assertion`): a short-lived JWT, signed with the
//! auth center's key (its `kid` is in `/.well-known/jwks.json`), that tells a backend who the
//! gateway authenticated, so the backend need not trust the network to know the identity
//! headers came from the gateway (as Pomerium's and Oathkeeper's assertions do).
//!
//! Claims: `iss` (`jwt.issuer`), `aud` and `route` (the route: `host/path` or `path`), `sub`
//! (the user id), `roles`, `sid` (when the request has a session), `idp` (which issuer's token:
//! `gateway` or an `[[issuer]]` name), `iat`, `nbf`, `exp` (two minutes on, never past the
//! token's own `exp`). Its header `typ` is
//! `gateway-assertion+jwt`, a type the gateway's own verifier refuses: a leaked assertion is
//! never an access token.
//!
//! Signing costs from microseconds (Ed25519) to a millisecond (RSA), so an assertion is reused
//! for the same identity and route for half its lifetime (a bounded map, emptied when full).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::mint::{MintError, Signer};
use super::Authenticated;
use crate::config::Route;

/// The header `typ` of an assertion.
pub const TYP: &str = "gateway-assertion+jwt";
/// How long an assertion is valid.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// Assertions kept for reuse.
const CACHE_ENTRIES: usize = 16_384;

/// Mints (and reuses) assertions.
pub struct Asserter {
    header: HeaderName,
    issuer: String,
    signer: Arc<Signer>,
    /// Identity+route digest -> (assertion, minted at, Unix s).
    cache: Mutex<HashMap<[u8; 32], (HeaderValue, u64)>>,
}

impl Asserter {
    pub fn new(header: HeaderName, issuer: String, signer: Arc<Signer>) -> Asserter {
        Asserter {
            header,
            issuer,
            signer,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The assertion for `who` on `route`, reused while less than half its life has passed.
    pub fn assertion(&self, who: &Authenticated, route: &Route) -> Result<HeaderValue, MintError> {
        let now = crate::clock::unix_now();
        let route_id = route_id(route);
        let key = digest(who, &route_id);
        let fresh = LIFETIME.as_secs() / 2;
        if let Some((value, at)) = self.lock().get(&key) {
            if now.saturating_sub(*at) < fresh {
                return Ok(value.clone());
            }
        }
        let token = self.signer.sign(TYP, &self.claims(who, &route_id, now))?;
        // A JWT is base64url and dots: always a valid header value.
        let value = HeaderValue::from_str(&token).map_err(|_| MintError::NotHeaderValue)?;
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (value.clone(), now));
        Ok(value)
    }

    fn claims(&self, who: &Authenticated, route_id: &str, now: u64) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("iss".into(), self.issuer.as_str().into());
        c.insert("aud".into(), route_id.into());
        c.insert("route".into(), route_id.into());
        c.insert("sub".into(), who.user_id().into());
        c.insert("roles".into(), who.roles().into());
        if let Some(sid) = who.session_id() {
            c.insert("sid".into(), sid.into());
        }
        c.insert("idp".into(), who.issuer().into());
        c.insert("iat".into(), now.into());
        c.insert("nbf".into(), now.into());
        // Never past the token's own expiry.
        let exp = now.saturating_add(LIFETIME.as_secs()).min(who.expires_at());
        c.insert("exp".into(), exp.into());
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (HeaderValue, u64)>> {
        // A panic while holding it left nothing half-written: a map of finished entries.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `host/path` for a route with a host, else its path.
pub fn route_id(route: &Route) -> String {
    match &route.host {
        Some(host) => format!("{host}{}", route.path),
        None => route.path.clone(),
    }
}

/// Everything an assertion says, hashed: a change of roles or session is a new assertion.
fn digest(who: &Authenticated, route_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [who.issuer(), who.user_id(), who.session_id().unwrap_or("")] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(who.roles().len().to_le_bytes());
    for role in who.roles() {
        h.update(role.len().to_le_bytes());
        h.update(role.as_bytes());
    }
    h.update(who.expires_at().to_le_bytes());
    h.update(route_id.as_bytes());
    h.finalize().into()
}
