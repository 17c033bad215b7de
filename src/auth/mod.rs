//! Authentication: the token (bearer.rs), its signature and claims (jwt.rs), the session
//! behind it (session.rs). Only this module can build an [`Authenticated`], so header
//! injection, which takes one, can only ever follow a real check.

pub mod bearer;
pub mod jwt;
pub mod mint;
pub mod session;

use http::HeaderMap;

use self::jwt::Verifier;
use self::session::{SessionStore, StoreError};

/// Proof that this request carried a valid token whose session is live. Fields are private
/// and there is no public constructor.
#[derive(Debug, Clone)]
pub struct Authenticated {
    user_id: String,
    roles: Vec<String>,
    session_id: String,
}

impl Authenticated {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
    /// True when `required` is empty or the caller has any one of them.
    pub fn has_any_role(&self, required: &[String]) -> bool {
        required.is_empty() || required.iter().any(|r| self.roles.iter().any(|h| h == r))
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
}

/// Token -> JWT -> session, in that order.
pub struct Authenticator {
    verifier: Verifier,
    store: SessionStore,
    cookie: Option<String>,
}

impl Authenticator {
    pub fn new(verifier: Verifier, store: SessionStore, cookie: Option<String>) -> Self {
        Authenticator {
            verifier,
            store,
            cookie,
        }
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// `Ok(None)`: the request carries no token at all.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Authenticated>, AuthError> {
        let token = match bearer::extract(headers, self.cookie.as_deref()) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(None),
            Err(e) => return Err(AuthError::Invalid(e.reason())),
        };
        let verified = self
            .verifier
            .verify(&token)
            .await
            .map_err(|e| AuthError::Invalid(e.reason()))?;
        let session = self
            .store
            .get(&verified.session_id)
            .await?
            .ok_or(AuthError::Invalid("session_revoked"))?;
        if session.user_id != verified.user_id {
            return Err(AuthError::Invalid("session_user_mismatch"));
        }
        // The session's roles win, so a permission change applies on the next request.
        let roles = session.roles.unwrap_or(verified.roles);
        Ok(Some(Authenticated {
            user_id: verified.user_id,
            roles,
            session_id: verified.session_id,
        }))
    }
}
