//! The login limit: failed logins are counted per username and per client address in the
//! session store (so every replica sees the same counts). Past a limit, login answers 429 with
//! `Retry-After` for the rest of the window, even with the right password. Unknown usernames
//! are counted like known ones, so the limit says nothing about who exists.
//!
//! A window starts at the first failure and is not extended by later ones. A successful login
//! resets its username's counter, not its address's (one valid account must not let an
//! address wipe its record of guessing at others).

use std::time::Duration;

use crate::auth::session::{Counter, SessionStore};
use crate::error::GatewayError;

/// Failed logins per username within [`WINDOW`] before it is locked.
pub const USERNAME_LIMIT: u64 = 5;
/// Failed logins per client address within [`WINDOW`] before it is locked.
pub const ADDRESS_LIMIT: u64 = 20;
/// How long failures count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The counters of one attempt: the username's (only for a valid username) and the address's.
pub(super) struct Attempt {
    names: Vec<String>,
    limits: Vec<u64>,
}

impl Attempt {
    pub(super) fn new(username: Option<&str>, ip: &str) -> Attempt {
        let mut names = Vec::with_capacity(2);
        let mut limits = Vec::with_capacity(2);
        if let Some(u) = username {
            names.push(user_counter(u));
            limits.push(USERNAME_LIMIT);
        }
        names.push(format!("login-fail:addr:{ip}"));
        limits.push(ADDRESS_LIMIT);
        Attempt { names, limits }
    }

    /// 429 when any counter has reached its limit.
    pub(super) async fn check(&self, store: &SessionStore) -> Result<(), GatewayError> {
        let counters = store.counters(&self.names, WINDOW, false).await?;
        match locked_for(&counters, &self.limits) {
            Some(retry_after) => Err(GatewayError::TooManyAttempts { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts one failure on every counter.
    pub(super) async fn failed(&self, store: &SessionStore) -> Result<(), GatewayError> {
        store.counters(&self.names, WINDOW, true).await?;
        Ok(())
    }
}

/// The username's counter name (under the key prefix).
fn user_counter(username: &str) -> String {
    format!("login-fail:user:{username}")
}

/// A successful login for `username`: its counter starts over.
pub(super) async fn succeeded(store: &SessionStore, username: &str) -> Result<(), GatewayError> {
    store.reset_counter(&user_counter(username)).await?;
    Ok(())
}

/// Seconds until every counter at its limit has reset (at least 1), or `None`.
fn locked_for(counters: &[Counter], limits: &[u64]) -> Option<u64> {
    counters
        .iter()
        .zip(limits)
        .filter(|(c, limit)| c.count >= **limit)
        .map(|(c, _)| c.resets_in.as_secs_f64().ceil() as u64)
        .max()
        .map(|s| s.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(count: u64, ms: u64) -> Counter {
        Counter {
            count,
            resets_in: Duration::from_millis(ms),
        }
    }

    #[test]
    fn locked_only_at_the_limit_and_for_the_longest_window() {
        let limits = [5, 20];
        assert_eq!(locked_for(&[c(4, 1000), c(19, 1000)], &limits), None);
        assert_eq!(locked_for(&[c(5, 1500), c(0, 0)], &limits), Some(2));
        assert_eq!(locked_for(&[c(5, 1000), c(20, 9000)], &limits), Some(9));
        assert_eq!(locked_for(&[c(9, 0), c(0, 0)], &limits), Some(1));
    }

    #[test]
    fn invalid_usernames_count_per_address_only() {
        let a = Attempt::new(None, "10.0.0.1");
        assert_eq!(a.names, ["login-fail:addr:10.0.0.1"]);
        let b = Attempt::new(Some("alice"), "::1");
        assert_eq!(b.names, ["login-fail:user:alice", "login-fail:addr:::1"]);
    }

    #[tokio::test]
    async fn memory_store_locks_after_five() {
        let store = SessionStore::Memory(crate::auth::session::MemoryStore::new());
        let a = Attempt::new(Some("bob"), "10.0.0.9");
        for _ in 0..USERNAME_LIMIT {
            a.check(&store).await.unwrap();
            a.failed(&store).await.unwrap();
        }
        let err = a.check(&store).await.unwrap_err();
        assert!(matches!(err, GatewayError::TooManyAttempts { retry_after } if retry_after > 800));
        succeeded(&store, "bob").await.unwrap();
        a.check(&store).await.unwrap();
    }
}
