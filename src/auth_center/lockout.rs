//! The login limit: login attempts are counted per username (its folded form, so `BOB` and
//! `bob` share one count) and per client address in the session store, so every replica sees
//! the same counts. Unknown usernames are counted like known ones, so the limit says nothing
//! about who exists.
//!
//! An attempt is counted *before* its password is checked, in one atomic store step that also
//! checks the limits (a Lua script in Redis, the store's lock in memory). Checking first and
//! counting after the (slow) password check would let every guess of a parallel burst pass the
//! check before any of them counted; counting first means a burst of any size gets at most
//! [`USERNAME_LIMIT`] password checks per username, and the rest 429 with `Retry-After`,
//! the right password among them. Past a limit, login answers 429 for the rest of the window.
//!
//! A window starts at the first counted attempt and is not extended by later ones. A refused
//! attempt (429) is not counted: it never reached a password check. A successful login takes
//! its own attempt back from both counters and nothing more: the failures before it still
//! count until the window ends, so within one window a username never gets more than
//! [`USERNAME_LIMIT`] wrong-password answers (nor an address more than [`ADDRESS_LIMIT`]),
//! however the owner's logins interleave with someone else's guesses.

use std::time::Duration;

use crate::auth::session::{Admission, SessionStore};
use crate::error::GatewayError;

/// Counted attempts per username within [`WINDOW`] before it is locked.
pub const USERNAME_LIMIT: u64 = 5;
/// Counted attempts per client address within [`WINDOW`] before it is locked.
pub const ADDRESS_LIMIT: u64 = 20;
/// How long attempts count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// OpenID logins one client address may begin within [`BEGIN_WINDOW`]: each writes a
/// ten-minute record to the session store, so an unbounded stream of them would fill it.
pub const OIDC_BEGIN_LIMIT: u64 = 30;
/// The window of [`OIDC_BEGIN_LIMIT`].
pub const BEGIN_WINDOW: Duration = Duration::from_secs(60);

/// Counts one OpenID login begun from `address`, or 429 past [`OIDC_BEGIN_LIMIT`].
pub(super) async fn count_oidc_begin(
    store: &SessionStore,
    address: &str,
) -> Result<(), GatewayError> {
    // Per address only: a total limit would let one IPv6 /56 (256 such addresses) lock
    // everyone out of SSO login.
    let counters = [(format!("oidc-begin:addr:{address}"), OIDC_BEGIN_LIMIT)];
    match store.count_attempt(&counters, BEGIN_WINDOW).await? {
        Admission::Counted => Ok(()),
        Admission::Locked { resets_in } => Err(GatewayError::TooManyAttempts {
            retry_after: retry_after(resets_in),
        }),
    }
}

/// The counters of one attempt: the username's (only for a valid username) and the address's.
pub(super) struct Attempt {
    counters: Vec<(String, u64)>,
}

impl Attempt {
    /// `folded`: the username as [`super::users::fold_username`] gives it.
    pub(super) fn new(folded: Option<&str>, ip: &str) -> Attempt {
        let mut counters = Vec::with_capacity(2);
        if let Some(u) = folded {
            counters.push((format!("login-fail:user:{u}"), USERNAME_LIMIT));
        }
        counters.push((format!("login-fail:addr:{ip}"), ADDRESS_LIMIT));
        Attempt { counters }
    }

    /// Counts this attempt, or 429 when a counter is already at its limit (nothing counted).
    pub(super) async fn count(&self, store: &SessionStore) -> Result<(), GatewayError> {
        match store.count_attempt(&self.counters, WINDOW).await? {
            Admission::Counted => Ok(()),
            Admission::Locked { resets_in } => Err(GatewayError::TooManyAttempts {
                retry_after: retry_after(resets_in),
            }),
        }
    }

    /// The attempt was not a wrong password (it succeeded, or was never checked): it no
    /// longer counts.
    pub(super) async fn take_back(&self, store: &SessionStore) -> Result<(), GatewayError> {
        let names: Vec<String> = self.counters.iter().map(|(n, _)| n.clone()).collect();
        store.uncount_attempt(&names).await?;
        Ok(())
    }
}

/// Whole seconds until the counter resets, at least 1.
fn retry_after(resets_in: Duration) -> u64 {
    (resets_in.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_at_least_a_second() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after(Duration::from_secs(9)), 9);
    }

    #[test]
    fn invalid_usernames_count_per_address_only() {
        let a = Attempt::new(None, "10.0.0.1");
        assert_eq!(a.counters, [("login-fail:addr:10.0.0.1".to_owned(), 20)]);
        let b = Attempt::new(Some("alice"), "::1");
        let names: Vec<&str> = b.counters.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["login-fail:user:alice", "login-fail:addr:::1"]);
    }

    #[tokio::test]
    async fn memory_store_admits_five_then_locks() {
        let store = SessionStore::Memory(crate::auth::session::MemoryStore::new());
        let a = Attempt::new(Some("bob"), "10.0.0.9");
        for _ in 0..USERNAME_LIMIT {
            a.count(&store).await.unwrap();
        }
        let err = a.count(&store).await.unwrap_err();
        assert!(matches!(err, GatewayError::TooManyAttempts { retry_after } if retry_after > 800));
        // A success takes one attempt back: exactly one more is admitted.
        a.take_back(&store).await.unwrap();
        a.count(&store).await.unwrap();
        assert!(a.count(&store).await.is_err());
    }
}
