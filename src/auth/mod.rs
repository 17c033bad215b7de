//! Authentication: the token (bearer.rs), its signature and claims (jwt.rs), the session
//! behind it (session.rs). Only this module can build an [`Authenticated`], so header
//! injection, which takes one, can only ever follow a real check.

pub mod assertion;
pub mod authorize;
pub mod bearer;
pub mod discovery;
pub mod header_memo;
pub mod issuers;
pub mod jwt;
pub mod mint;
pub mod outbound;
pub mod session;
pub mod session_cache;
pub mod token_cache;

use http::HeaderMap;

use std::sync::Arc;

use self::header_memo::{HeaderMemo, TokenHeaders};
use self::issuers::Issuers;
use self::jwt::{TokenError, VerifiedToken};
use self::session::{SessionRecord, SessionStore, StoreError};
use self::session_cache::{Lookup, SessionCache};
use self::token_cache::TokenCache;
use crate::observe::metrics::Metrics;

/// Verified tokens kept in memory (about 200 bytes each).
pub const TOKEN_CACHE_ENTRIES: usize = 65_536;
/// Tokens whose signature failed, remembered (about 60 bytes each) so that the same junk
/// token sent again is refused without another signature check.
pub const FAILED_TOKEN_ENTRIES: usize = 4_096;
/// How long a signature failure is remembered (a key change forgets it at once).
const FAILED_TOKEN_SECS: u64 = 60;

/// Proof that this request carried a valid token of an accepted issuer, whose session (when
/// the issuer needs one) is live. Fields are private and there is no public constructor.
#[derive(Debug, Clone)]
pub struct Authenticated {
    token: Arc<VerifiedToken>,
    /// [`crate::config::OWN_ISSUER`] or the `[[issuer]]` name.
    issuer: Arc<str>,
    /// The live session, when the issuer needs one.
    session: Option<Arc<SessionRecord>>,
}

impl Authenticated {
    pub fn user_id(&self) -> &str {
        &self.token.user_id
    }
    /// The session's roles when it has them (so a permission change applies on the next
    /// request), else the token's.
    pub fn roles(&self) -> &[String] {
        match self.session.as_deref().and_then(|s| s.roles.as_deref()) {
            Some(roles) => roles,
            None => &self.token.roles,
        }
    }
    /// Where the identity header values are kept once built: the user id and session id with
    /// the cached token, the roles with whichever of session and token gives them.
    pub fn header_memos(&self) -> (&TokenHeaders, &HeaderMemo) {
        let roles = match self.session.as_deref() {
            Some(s) if s.roles.is_some() => &s.roles_header,
            _ => &self.token.headers.roles,
        };
        (&self.token.headers, roles)
    }
    /// `None` for a token of an issuer whose tokens need no session.
    pub fn session_id(&self) -> Option<&str> {
        self.token.session_id.as_deref()
    }
    /// The token's `exp`, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.token.expires_at
    }
    /// Which issuer's token this was.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// A claim some route passes upstream, as header text (`claims_to_headers`): the
    /// token's, else the session's (an OpenID login keeps its ID token's there).
    pub fn claim(&self, name: &str) -> Option<&str> {
        let session = self.session.as_deref().map_or(&[][..], |s| &s.claims[..]);
        self.token
            .claims
            .iter()
            .chain(session)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// True when `required` is empty or the caller has any one of them.
    pub fn has_any_role(&self, required: &[String]) -> bool {
        required.is_empty() || required.iter().any(|r| self.roles().iter().any(|h| h == r))
    }
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token")]
    Missing,
    /// The label says why (for logs and metrics); the client only sees `invalid_token`.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The store could not answer: 503, never a pass and never a 401.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Authenticated, but the session holds none of the route's roles (403); the user id is
    /// for the access log.
    #[error("none of the route's roles")]
    Forbidden { user_id: String },
}

/// What the auth center's own endpoints accept: the gateway's own tokens only.
pub const OWN_ONLY: &[&str] = &[crate::config::OWN_ISSUER];

/// Token -> JWT -> session, in that order.
pub struct Authenticator {
    issuers: Issuers,
    tokens: TokenCache,
    /// Recent signature failures, by token digest.
    failed: TokenCache<TokenError>,
    /// Shared with the next `Authenticator` when a reload keeps `[session]` as it was.
    store: Arc<SessionStore>,
    /// Redis stores only, when `session.cache` is on.
    sessions: Option<SessionCache>,
    cookie: Option<String>,
    /// Store call latency and errors go here when set.
    metrics: Option<Arc<Metrics>>,
}

impl Authenticator {
    pub fn new(
        issuers: Issuers,
        store: Arc<SessionStore>,
        sessions: Option<SessionCache>,
        cookie: Option<String>,
    ) -> Self {
        Authenticator {
            issuers,
            tokens: TokenCache::new(TOKEN_CACHE_ENTRIES),
            failed: TokenCache::new(FAILED_TOKEN_ENTRIES),
            store,
            sessions,
            cookie,
            metrics: None,
        }
    }

    /// Records every session store call (latency, errors) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// The store and session cache, for a reload that keeps `[session]` unchanged.
    pub fn shared_store(&self) -> (Arc<SessionStore>, Option<SessionCache>) {
        (self.store.clone(), self.sessions.clone())
    }

    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// `Ok(None)`: the request carries no token at all. `accepted` names the issuers
    /// whose tokens may pass (a route's `issuers`, or [`OWN_ONLY`]); any other valid token
    /// is refused like an invalid one.
    pub async fn authenticate<S: AsRef<str>>(
        &self,
        headers: &HeaderMap,
        accepted: &[S],
    ) -> Result<Option<Authenticated>, AuthError> {
        let token = match bearer::extract(headers, self.cookie.as_deref()) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(None),
            Err(e) => return Err(AuthError::Invalid(e.reason())),
        };
        let verified = self.verify(token).await?;
        let issuer = self.issuers.name(verified.issuer);
        if !accepted.iter().any(|a| a.as_ref() == &*issuer) {
            return Err(AuthError::Invalid("issuer_not_accepted"));
        }
        let session = match verified.session_id.as_deref() {
            None => None,
            Some(sid) => {
                let session = self
                    .session(sid)
                    .await?
                    .ok_or(AuthError::Invalid("session_revoked"))?;
                if session.user_id != verified.user_id {
                    return Err(AuthError::Invalid("session_user_mismatch"));
                }
                Some(session)
            }
        };
        Ok(Some(Authenticated {
            token: verified,
            issuer,
            session,
        }))
    }

    /// Call after this instance revokes or changes a session (logout, kick, refresh reuse):
    /// the local cache forgets it at once; other instances learn it from Redis' push.
    pub fn forget_session(&self, sid: &str) {
        if let Some(cache) = &self.sessions {
            cache.invalidate(sid);
        }
    }

    pub fn session_cache(&self) -> Option<&SessionCache> {
        self.sessions.as_ref()
    }

    /// The session step, through the coherent session cache when there is one.
    async fn session(&self, sid: &str) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let Some(cache) = &self.sessions else {
            return Ok(self.store_get(sid).await?.map(Arc::new));
        };
        match cache.lookup(sid) {
            Lookup::Hit(record) => Ok(record),
            Lookup::Bypass => Ok(self.store_get(sid).await?.map(Arc::new)),
            Lookup::Miss(ticket) => match self.store_get(sid).await {
                Ok(record) => {
                    cache.fill(sid, ticket, record.clone());
                    Ok(record.map(Arc::new))
                }
                Err(e) => {
                    cache.abandon(sid, ticket);
                    Err(e)
                }
            },
        }
    }

    /// One timed session read from the store. Boxed: a Redis call's state (cluster routing,
    /// Sentinel) is large, and held inline it would be moved with every request's future,
    /// cache hits included; a cache miss pays one allocation instead.
    async fn store_get(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        let Some(metrics) = &self.metrics else {
            return Box::pin(self.store.get(sid)).await;
        };
        let started = std::time::Instant::now();
        let result = Box::pin(self.store.get(sid)).await;
        metrics.observe_store(
            "get",
            started.elapsed(),
            result.as_ref().err().map(StoreError::kind),
        );
        result
    }

    /// The JWT step, through the verified-token cache: signature and claims are checked once
    /// per token; the expiry is checked on every hit. A token whose signature failed is
    /// refused from the failure cache until the keys change (every other refusal is cheaper
    /// than a lookup: the claims are checked before the signature).
    async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, AuthError> {
        let now = crate::clock::unix_now();
        let generation = self.issuers.key_generation();
        let digest = token_cache::digest(token);
        if let Some(hit) = self.tokens.get(&digest, now, generation) {
            return Ok(hit);
        }
        if let Some(failure) = self.failed.get(&digest, now, generation) {
            return Err(AuthError::Invalid(failure.reason()));
        }
        let verified = match self.issuers.verify(token).await {
            Ok(v) => Arc::new(v),
            Err(e) => {
                if e == TokenError::Signature {
                    let until = now.saturating_add(FAILED_TOKEN_SECS);
                    self.failed
                        .insert(digest, e.clone(), until, generation, now);
                }
                return Err(AuthError::Invalid(e.reason()));
            }
        };
        let valid_until = verified
            .expires_at
            .saturating_add(self.issuers.leeway_secs(&verified));
        self.tokens
            .insert(digest, verified.clone(), valid_until, generation, now);
        Ok(verified)
    }
}
