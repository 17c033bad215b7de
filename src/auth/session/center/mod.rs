//! What the auth center keeps in the session store beside the sessions themselves
//! (docs/contract.md, "Session keys in Redis"): refresh-token records, user records and login-attempt counters,
//! and the atomic operations everything rests on: refresh rotation, user creation, and
//! counting a login attempt before its password is checked.
//!
//! In Redis every operation that reads and then writes is one Lua script, so two gateways
//! (or two requests on one) can never both pass the same check; the memory store does the
//! same under its mutex (`memory_center.rs`).

use std::time::Duration;

mod oidc;
mod redis;

use super::{parse_roles, NewSession, SessionStore, StoreError};

/// A user record: `{P}user:{name}`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    /// PHC string (argon2id). Never logged, never sent anywhere.
    pub password_hash: String,
    pub roles: Vec<String>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    /// Reads a user hash; `None` without a non-empty `user_id` and `password_hash`.
    pub fn from_fields<K, V>(fields: impl IntoIterator<Item = (K, V)>) -> Option<UserRecord>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let (mut user_id, mut hash, mut roles) = (None, None, Vec::new());
        for (name, value) in fields {
            let text = std::str::from_utf8(value.as_ref()).ok().map(str::to_owned);
            match name.as_ref() {
                b"user_id" => user_id = text,
                b"password_hash" => hash = text,
                b"roles" => roles = text.as_deref().map(parse_roles).unwrap_or_default(),
                _ => {}
            }
        }
        Some(UserRecord {
            user_id: user_id.filter(|u| !u.is_empty())?,
            password_hash: hash.filter(|h| !h.is_empty())?,
            roles,
        })
    }

    fn fields(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        if self.user_id.is_empty() || self.password_hash.is_empty() {
            return Err(StoreError::Invalid("user without id or hash".into()));
        }
        if self.roles.iter().any(|r| r.contains(',')) {
            return Err(StoreError::Invalid("a role contains a comma".into()));
        }
        Ok(vec![
            ("user_id", self.user_id.clone()),
            ("password_hash", self.password_hash.clone()),
            ("roles", self.roles.join(",")),
        ])
    }
}

/// What a refresh must match, per `auth.bind_refresh`. The session's own `device_id` or `ip`
/// is the reference; a session without one (written by another service) is not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    None,
    /// The `device_id` sent with the refresh ("" when none was sent).
    Device(&'a str),
    /// The client address of the refresh.
    Ip(&'a str),
}

/// One refresh: the presented token's hash, the hash of its replacement, the rules.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The session the presented token names (its first part), if it names one: on a
    /// cluster, its keys' hash tag. The store's record stays the authority.
    pub sid: Option<&'a str>,
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub binding: Binding<'a>,
    /// `auth.refresh_max_uses`.
    pub max_uses: u64,
    /// The new record's lifetime when the session has no expiry of its own.
    pub fallback_ttl: Duration,
    /// `auth.refresh_grace` (zero: off). When set, the rotation also keeps, for this long,
    /// `sealed_successor` and `device`, so the same token shown again from the same device
    /// gets the same successor ([`RefreshOutcome::Again`]) instead of revoking the session.
    pub grace: Duration,
    /// The new refresh token sealed with a key only the presented token gives
    /// (`tokens::seal`): the store never holds a usable token.
    pub sealed_successor: &'a str,
    /// The `device_id` sent with this refresh ("" when none): a replay within the grace must
    /// send the same one.
    pub device: &'a str,
}

/// How a refresh ended. Only `Rotated` and `Again` hand out anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The old token is now used, the new one live, `refresh_count` incremented.
    Rotated {
        sid: String,
        user_id: String,
        /// The session's `roles` field (`None`: absent).
        roles: Option<Vec<String>>,
        refresh_count: u64,
        /// Until the session ends (the new refresh token's lifetime).
        remaining: Duration,
    },
    /// A token used within the grace, shown again from the same device while its successor
    /// is still live: nothing changed; `sealed` is the successor it was rotated into.
    Again {
        sid: String,
        user_id: String,
        roles: Option<Vec<String>>,
        remaining: Duration,
        sealed: String,
    },
    /// No such token (never issued, or its session ended long ago).
    Unknown,
    /// A used token shown again: the session `sid` has been revoked.
    Reused { sid: String },
    /// The session has ended or was revoked.
    SessionGone,
    /// `refresh_max_uses` reached; nothing changed.
    Exhausted,
    /// Another device or address: the session `sid` has been revoked.
    BindingMismatch { sid: String },
}

/// What counting one login attempt found ([`SessionStore::count_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every counter was below its limit and now counts this attempt: check the password.
    Counted,
    /// A counter is at its limit: nothing was counted; the longest wait until one resets.
    Locked { resets_in: Duration },
}

impl SessionStore {
    /// Writes a new session and its first refresh record (state `live`) together, both
    /// expiring after `ttl`.
    pub async fn begin(
        &self,
        new: &NewSession,
        refresh_hash: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => s.begin(new, refresh_hash, ttl).await,
            SessionStore::Memory(s) => s.begin(new, refresh_hash, ttl),
        }
    }

    /// One refresh, atomically: see [`RefreshOutcome`].
    pub async fn rotate(&self, r: &Rotation<'_>) -> Result<RefreshOutcome, StoreError> {
        match self {
            SessionStore::Redis(s) => s.rotate(r).await,
            SessionStore::Memory(s) => Ok(s.rotate(r)),
        }
    }

    /// Deletes every session of `user_id`; returns how many there were.
    pub async fn delete_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        match self {
            SessionStore::Redis(s) => s.delete_for_user(user_id).await,
            SessionStore::Memory(s) => Ok(s.delete_for_user(user_id)),
        }
    }

    pub async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        match self {
            SessionStore::Redis(s) => s.get_user(name).await,
            SessionStore::Memory(s) => Ok(s.get_user(name)),
        }
    }

    /// Writes a user; with `replace = false` an existing one is kept and `false` returned.
    pub async fn put_user(
        &self,
        name: &str,
        user: &UserRecord,
        replace: bool,
    ) -> Result<bool, StoreError> {
        match self {
            SessionStore::Redis(s) => s.put_user(name, user, replace).await,
            SessionStore::Memory(s) => s.put_user(name, user, replace),
        }
    }

    /// Counts one login attempt on the counters `{P}{name}` (each `(name, limit)`), in one
    /// atomic step: when every counter is below its limit each counts one more and the answer
    /// is [`Admission::Counted`]; otherwise nothing changes and [`Admission::Locked`]. A
    /// counter resets `window` after its first count. Never retried (a lost answer may have
    /// counted), so concurrent attempts can never all pass a check made before the count.
    pub async fn count_attempt(
        &self,
        counters: &[(String, u64)],
        window: Duration,
    ) -> Result<Admission, StoreError> {
        match self {
            SessionStore::Redis(s) => s.count_attempt(counters, window).await,
            SessionStore::Memory(s) => Ok(s.count_attempt(counters, window)),
        }
    }

    /// Takes one counted attempt back from each counter `{P}{name}` that still counts.
    pub async fn uncount_attempt(&self, names: &[String]) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => s.uncount_attempt(names).await,
            SessionStore::Memory(s) => {
                s.uncount_attempt(names);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redis::parse_rotation;
    use super::*;

    #[test]
    fn user_record_needs_id_and_hash() {
        let u = UserRecord::from_fields([
            ("user_id", "alice"),
            ("password_hash", "$argon2id$x"),
            ("roles", "admin, ops"),
        ])
        .unwrap();
        assert_eq!(u.roles, ["admin", "ops"]);
        assert!(!format!("{u:?}").contains("argon2id"));
        assert!(UserRecord::from_fields([("user_id", "a")]).is_none());
        assert!(UserRecord::from_fields([("password_hash", "h")]).is_none());
        let comma = UserRecord {
            roles: vec!["a,b".into()],
            ..u
        };
        assert!(comma.fields().is_err());
    }

    #[test]
    fn rotation_answers_parse() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_rotation(&s(&["reused", "s"])).unwrap(),
            RefreshOutcome::Reused { sid: "s".into() }
        );
        assert!(parse_rotation(&s(&["reused"])).is_err());
        assert_eq!(
            parse_rotation(&s(&["again", "s", "u", "0", "", "900", "SEALED"])).unwrap(),
            RefreshOutcome::Again {
                sid: "s".into(),
                user_id: "u".into(),
                roles: None,
                remaining: Duration::from_millis(900),
                sealed: "SEALED".into(),
            }
        );
        assert_eq!(
            parse_rotation(&s(&["ok", "s", "u", "1", "a,b", "2", "1500"])).unwrap(),
            RefreshOutcome::Rotated {
                sid: "s".into(),
                user_id: "u".into(),
                roles: Some(vec!["a".into(), "b".into()]),
                refresh_count: 2,
                remaining: Duration::from_millis(1500),
            }
        );
        let no_roles = parse_rotation(&s(&["ok", "s", "u", "0", "", "1", "9"])).unwrap();
        assert!(matches!(
            no_roles,
            RefreshOutcome::Rotated { roles: None, .. }
        ));
        assert!(parse_rotation(&s(&["ok", "s"])).is_err());
        assert!(parse_rotation(&[]).is_err());
    }
}
