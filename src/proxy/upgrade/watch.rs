//! Whether an open tunnel's session is still valid. With the session cache's invalidation link
//! up, the tunnel sleeps until Redis (or this instance) invalidates its session id or the cache
//! is flushed, then reads the store once; otherwise (`session.cache = false`, the memory
//! store, the link down) it reads the store every [`PERIOD`]: one read per tunnel per period,
//! so a revocation ends it within a second either way.
//!
//! Fail closed: a store that cannot answer [`MAX_FAILURES`] re-checks in a row closes the
//! tunnel, since its session can no longer be vouched for.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::session::SessionStore;
use crate::auth::session_cache::Subscription;
use crate::auth::{Authenticated, Authenticator};

/// The re-check period without invalidation pushes (and after a failed re-check).
pub const PERIOD: Duration = Duration::from_millis(500);
/// With pushes, the session is still read this often, in case one was lost unnoticed.
pub const BACKSTOP: Duration = crate::auth::session_cache::BACKSTOP;
/// Failed re-checks in a row (each bounded by `session.timeout`) before the tunnel is closed.
pub const MAX_FAILURES: u32 = 3;

/// Why a tunnel is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The session is gone: logout, kick, refresh reuse, `DEL`, expiry.
    Revoked,
    /// The session id now belongs to another user.
    OtherUser,
    /// The session's `roles` field no longer grants what the route requires.
    RolesLost,
    /// The store could not answer [`MAX_FAILURES`] re-checks in a row.
    StoreUnavailable,
}

impl Verdict {
    /// For the log.
    pub fn reason(self) -> &'static str {
        match self {
            Verdict::Revoked => "session_revoked",
            Verdict::OtherUser => "session_user_mismatch",
            Verdict::RolesLost => "insufficient_scope",
            Verdict::StoreUnavailable => "session_store_unavailable",
        }
    }
}

/// What an open tunnel re-checks: its session in the store that authenticated it.
pub struct Watch {
    store: Arc<SessionStore>,
    /// Registered before the first re-check, so no invalidation can slip in between.
    subscription: Option<Subscription>,
    sid: String,
    user_id: String,
    /// The route's `roles` (any of); empty when it requires none.
    required_roles: Vec<String>,
}

impl Watch {
    /// The watch for a tunnel opened by `who` on a route requiring `required_roles`, against
    /// the store (and cache) that authenticated it; `None` for an anonymous tunnel. The
    /// subscription is taken now, before the splice starts, and the first re-check is
    /// immediate, so a revocation at any moment after authentication is seen.
    pub fn start(
        auth: &Authenticator,
        who: Option<&Authenticated>,
        required_roles: &[String],
    ) -> Option<Watch> {
        let who = who?;
        // A token of an issuer that needs no session has nothing to revoke here.
        let sid = who.session_id()?;
        let (store, cache) = auth.shared_store();
        Some(Watch {
            store,
            subscription: cache.map(|c| c.subscribe(sid)),
            sid: sid.to_owned(),
            user_id: who.user_id().to_owned(),
            required_roles: required_roles.to_vec(),
        })
    }

    pub fn session_id(&self) -> &str {
        &self.sid
    }

    /// Returns once the session is no longer valid; never while it is. The first re-check is
    /// immediate (covering a revocation between authentication and the subscription).
    pub async fn revoked(&mut self) -> Verdict {
        let mut failures = 0;
        loop {
            match self.check().await {
                Ok(Some(verdict)) => return verdict,
                Ok(None) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::debug!(session_id = %self.sid, error = %e, failures,
                        "tunnel: session re-check failed");
                    if failures >= MAX_FAILURES {
                        return Verdict::StoreUnavailable;
                    }
                }
            }
            self.wait(failures > 0).await;
        }
    }

    /// Until the next re-check is due.
    async fn wait(&mut self, retry: bool) {
        match &mut self.subscription {
            Some(sub) if sub.is_live() && !retry => {
                let _ = tokio::time::timeout(BACKSTOP, sub.changed()).await;
            }
            Some(sub) => {
                let _ = tokio::time::timeout(PERIOD, sub.changed()).await;
            }
            None => tokio::time::sleep(PERIOD).await,
        }
    }

    /// One read of the store: `Some` verdict when the tunnel must close.
    async fn check(&self) -> Result<Option<Verdict>, crate::auth::session::StoreError> {
        let Some(record) = self.store.get(&self.sid).await? else {
            return Ok(Some(Verdict::Revoked));
        };
        if record.user_id != self.user_id {
            return Ok(Some(Verdict::OtherUser));
        }
        // As on a request: the session's roles win when it has the field; without it the
        // token's roles applied at the upgrade and have not changed since.
        if let Some(roles) = &record.roles {
            let required = &self.required_roles;
            if !required.is_empty() && !required.iter().any(|r| roles.contains(r)) {
                return Ok(Some(Verdict::RolesLost));
            }
        }
        Ok(None)
    }
}
