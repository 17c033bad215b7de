//! Session stores: the server-side half of authentication. A token names a session id; the
//! session record (docs/contract.md, "Session keys in Redis") says whether it is still live, whose it is and which
//! roles it carries. Two stores with the same semantics: Redis (shared by every replica and by
//! other services that write the same keys) and memory (one instance, tests and demos).
//!
//! Every call returns within the configured store timeout: a store that cannot answer gives
//! [`StoreError::Timeout`] or [`StoreError::Unavailable`], which the gateway turns into a 503,
//! never a pass and never a 401.

mod center;
mod cluster;
mod connection;
mod memory;
mod memory_center;
mod redis;
mod target;

use std::time::Duration;

pub use self::center::{Admission, Binding, RefreshOutcome, Rotation, UserRecord};
pub(crate) use self::connection::probe;
pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub(crate) use self::target::{read_ca, Target};

use crate::config::{self, StoreKind};

/// Why a store call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No answer within the store timeout (queueing for a permit included).
    #[error("session store did not answer in time")]
    Timeout,
    /// The store cannot be reached or answered with an error.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The caller asked for something the store cannot hold (a bad `redis_url`, a zero TTL,
    /// a role containing a comma). Not a fault of the store: a bug or a configuration error.
    #[error("invalid session store request: {0}")]
    Invalid(String),
    /// `session.redis_ca` cannot be read or holds no certificate.
    #[error("session.redis_ca: {reason}")]
    Ca {
        file: std::path::PathBuf,
        reason: String,
    },
}

impl StoreError {
    /// The label of its kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Invalid(_) | StoreError::Ca { .. } => "invalid",
        }
    }
}

/// A live session as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: String,
    /// The `roles` field: comma separated, each trimmed, empties dropped. `None` when the field
    /// is absent (the token's roles apply), `Some(vec![])` when it is present but empty (the
    /// session has no roles, whatever the token says).
    pub roles: Option<Vec<String>>,
    /// Unix seconds; `None` when absent or not a number.
    pub created_at: Option<u64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    /// Refreshes done in this login session; 0 when absent or not a number.
    pub refresh_count: u64,
    /// The `claims` field: claims of the login that routes pass upstream
    /// (`claims_to_headers`), such as an OpenID login's `email`; a JSON object of strings.
    /// Empty when absent or unreadable.
    pub claims: Vec<(String, String)>,
    /// `roles` as the roles header's value, built once per cached record.
    pub roles_header: crate::auth::header_memo::HeaderMemo,
}

/// What [`SessionStore::create`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub sid: String,
    pub user_id: String,
    /// `None`: no `roles` field is written, so the token's roles apply.
    pub roles: Option<Vec<String>>,
    /// Unix seconds.
    pub created_at: u64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    /// Written as the `claims` field (a JSON object) when not empty.
    pub claims: Vec<(String, String)>,
}

/// The configured store. An enum rather than a trait object: two stores, known at compile time.
#[derive(Debug)]
pub enum SessionStore {
    Redis(RedisStore),
    Memory(MemoryStore),
}

impl SessionStore {
    /// Builds the configured store. For Redis this does not wait for Redis: the connection is
    /// made (and remade) in the background, and calls fail with `Timeout`/`Unavailable` until
    /// it is up. Only a bad `redis_url` is an error here. Must be called inside a Tokio runtime.
    pub async fn connect(cfg: &config::Session) -> Result<SessionStore, StoreError> {
        match cfg.store {
            StoreKind::Redis => RedisStore::connect(cfg).map(SessionStore::Redis),
            StoreKind::Memory => Ok(SessionStore::Memory(MemoryStore::new())),
        }
    }

    /// The session `sid`, or `None` when there is none (or it has no `user_id`).
    pub async fn get(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        match self {
            SessionStore::Redis(s) => s.get(sid).await,
            SessionStore::Memory(s) => Ok(s.get(sid)),
        }
    }

    /// Writes the session (replacing any with the same id), expiring after `ttl`, and adds it
    /// to its user's set.
    pub async fn create(&self, new: &NewSession, ttl: Duration) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => s.create(new, ttl).await,
            SessionStore::Memory(s) => s.create(new, ttl),
        }
    }

    /// Writes the session only when no session has this id: `Ok(true)` when written,
    /// `Ok(false)` when one exists, which is left exactly as it was (its roles, binding and
    /// refresh count). One atomic step in either store, so a racing create cannot slip in.
    pub async fn create_if_absent(
        &self,
        new: &NewSession,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            SessionStore::Redis(s) => s.create_if_absent(new, ttl).await,
            SessionStore::Memory(s) => s.create_if_absent(new, ttl),
        }
    }

    /// Removes the session; `true` when it existed.
    pub async fn delete(&self, sid: &str) -> Result<bool, StoreError> {
        match self {
            SessionStore::Redis(s) => s.delete(sid).await,
            SessionStore::Memory(s) => Ok(s.delete(sid)),
        }
    }

    /// The user's live sessions, oldest first; ids whose session is gone are pruned.
    pub async fn list_for_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        match self {
            SessionStore::Redis(s) => s.list_for_user(user_id).await,
            SessionStore::Memory(s) => Ok(s.list_for_user(user_id)),
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => s.ping().await,
            SessionStore::Memory(_) => Ok(()),
        }
    }
}

/// Splits a `roles` field: comma separated, each trimmed, empties dropped.
pub fn parse_roles(field: &str) -> Vec<String> {
    // Commas per the contract; whitespace too, as for the token's roles claim, so that
    // "user admin" is two roles here and in X-User-Roles, never one that a backend splits.
    field
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

impl SessionRecord {
    /// Reads a session hash. `None` when `user_id` is missing, empty or not UTF-8: such a hash
    /// is not a session. Unknown fields are ignored; other fields that do not parse are treated
    /// as absent, so a record written by another service never makes the store fail.
    pub fn from_fields<K, V>(fields: impl IntoIterator<Item = (K, V)>) -> Option<SessionRecord>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut user_id = None;
        let mut record = SessionRecord {
            user_id: String::new(),
            roles: None,
            created_at: None,
            ip: None,
            user_agent: None,
            device_id: None,
            refresh_count: 0,
            claims: Vec::new(),
            roles_header: Default::default(),
        };
        for (name, value) in fields {
            let value = value.as_ref();
            let text = || String::from_utf8_lossy(value).into_owned();
            let optional = || Some(text()).filter(|v| !v.is_empty());
            let number = || std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok();
            match name.as_ref() {
                b"user_id" => user_id = std::str::from_utf8(value).ok().map(str::to_owned),
                b"roles" => record.roles = Some(parse_roles(&text())),
                b"created_at" => record.created_at = number(),
                b"ip" => record.ip = optional(),
                b"user_agent" => record.user_agent = optional(),
                b"device_id" => record.device_id = optional(),
                b"refresh_count" => record.refresh_count = number().unwrap_or(0),
                b"claims" => record.claims = parse_claims(value),
                _ => {}
            }
        }
        record.user_id = user_id.filter(|u| !u.is_empty())?;
        Some(record)
    }
}

impl NewSession {
    /// Checks what both stores refuse to write: empty ids, a zero TTL, roles that would not
    /// read back as written.
    fn validate(&self, ttl: Duration) -> Result<(), StoreError> {
        if self.sid.is_empty() || self.user_id.is_empty() {
            return Err(StoreError::Invalid("empty session or user id".into()));
        }
        if ttl < Duration::from_millis(1) {
            return Err(StoreError::Invalid("session TTL below 1ms".into()));
        }
        let bad_role = self.roles.iter().flatten().any(|r| r.contains(','));
        if bad_role {
            return Err(StoreError::Invalid("a role contains a comma".into()));
        }
        Ok(())
    }

    /// The hash fields of docs/contract.md, "Session keys in Redis", in the order they are written. Absent options
    /// are not written; `refresh_count` starts at 0.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("user_id", self.user_id.clone())];
        if let Some(roles) = &self.roles {
            let trimmed: Vec<&str> = roles.iter().map(|r| r.trim()).collect();
            fields.push(("roles", trimmed.join(",")));
        }
        fields.push(("created_at", self.created_at.to_string()));
        let optional = [
            ("ip", &self.ip),
            ("user_agent", &self.user_agent),
            ("device_id", &self.device_id),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                fields.push((name, value.clone()));
            }
        }
        if !self.claims.is_empty() {
            let object: serde_json::Map<String, serde_json::Value> = self
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().into()))
                .collect();
            fields.push(("claims", serde_json::Value::Object(object).to_string()));
        }
        fields.push(("refresh_count", "0".to_owned()));
        fields
    }
}

/// A `claims` field: a JSON object whose string members are kept; anything else is none.
fn parse_claims(value: &[u8]) -> Vec<(String, String)> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(value) {
        Ok(object) => object
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The longest TTL a store accepts; longer ones are cut to it (Redis refuses expiry times that
/// overflow, and `Instant + Duration` must not overflow either).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A TTL in whole milliseconds, at least 1, at most [`MAX_TTL`].
fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.min(MAX_TTL).as_millis();
    // MAX_TTL in milliseconds fits in a u64 by far.
    u64::try_from(millis).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_session() -> NewSession {
        NewSession {
            sid: "s1".into(),
            user_id: "u1".into(),
            roles: Some(vec![" admin".into(), "ops ".into(), "".into()]),
            created_at: 1_700_000_000,
            ip: Some("10.0.0.1".into()),
            user_agent: None,
            device_id: Some("".into()),
            claims: Vec::new(),
        }
    }

    #[test]
    fn roles_are_trimmed_and_empties_dropped() {
        assert_eq!(parse_roles(" a, b ,,c ,"), vec!["a", "b", "c"]);
        assert!(parse_roles("").is_empty());
        assert!(parse_roles(" , ").is_empty());
    }

    #[test]
    fn record_from_fields_reads_every_field() {
        let r = SessionRecord::from_fields([
            ("user_id", "u1"),
            ("roles", "admin, ops"),
            ("created_at", "17"),
            ("ip", "1.2.3.4"),
            ("user_agent", "curl"),
            ("device_id", "d"),
            ("refresh_count", "3"),
            ("something_else", "x"),
        ])
        .unwrap();
        assert_eq!(r.user_id, "u1");
        assert_eq!(r.roles, Some(vec!["admin".to_owned(), "ops".to_owned()]));
        assert_eq!(r.created_at, Some(17));
        assert_eq!(r.ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(r.user_agent.as_deref(), Some("curl"));
        assert_eq!(r.device_id.as_deref(), Some("d"));
        assert_eq!(r.refresh_count, 3);
    }

    #[test]
    fn record_absent_roles_is_none_empty_roles_is_some_empty() {
        let none = SessionRecord::from_fields([("user_id", "u")]).unwrap();
        assert_eq!(none.roles, None);
        assert_eq!(none.refresh_count, 0);
        let empty = SessionRecord::from_fields([("user_id", "u"), ("roles", "")]).unwrap();
        assert_eq!(empty.roles, Some(vec![]));
    }

    #[test]
    fn record_without_valid_user_id_is_no_session() {
        assert!(SessionRecord::from_fields([("roles", "a")]).is_none());
        assert!(SessionRecord::from_fields([("user_id", "")]).is_none());
        let bad: [(&[u8], &[u8]); 1] = [(b"user_id", b"\xff\xfe")];
        assert!(SessionRecord::from_fields(bad).is_none());
        assert!(SessionRecord::from_fields(Vec::<(String, String)>::new()).is_none());
    }

    #[test]
    fn record_tolerates_garbage_in_other_fields() {
        let fields: [(&[u8], &[u8]); 4] = [
            (b"user_id", b"u"),
            (b"created_at", b"yesterday"),
            (b"refresh_count", b"-1"),
            (b"user_agent", b"\xffbot"),
        ];
        let r = SessionRecord::from_fields(fields).unwrap();
        assert_eq!(r.created_at, None);
        assert_eq!(r.refresh_count, 0);
        assert_eq!(r.user_agent.as_deref(), Some("\u{fffd}bot"));
    }

    #[test]
    fn new_session_fields_read_back_as_written() {
        let new = new_session();
        let fields = new.fields();
        let names: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "user_id",
                "roles",
                "created_at",
                "ip",
                "device_id",
                "refresh_count"
            ]
        );
        let r = SessionRecord::from_fields(fields).unwrap();
        assert_eq!(r.roles, Some(vec!["admin".to_owned(), "ops".to_owned()]));
        assert_eq!(r.created_at, Some(1_700_000_000));
        assert_eq!(r.device_id, None);
        assert_eq!(r.user_agent, None);
    }

    #[test]
    fn validate_refuses_what_would_not_read_back() {
        let ok = new_session();
        assert!(ok.validate(Duration::from_secs(1)).is_ok());
        assert!(matches!(
            ok.validate(Duration::ZERO),
            Err(StoreError::Invalid(_))
        ));
        let comma = NewSession {
            roles: Some(vec!["a,admin".into()]),
            ..new_session()
        };
        assert!(comma.validate(Duration::from_secs(1)).is_err());
        let no_user = NewSession {
            user_id: String::new(),
            ..new_session()
        };
        assert!(no_user.validate(Duration::from_secs(1)).is_err());
    }

    #[test]
    fn ttl_millis_saturates_and_is_never_zero() {
        assert_eq!(ttl_millis(Duration::from_micros(10)), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), 100 * 365 * 24 * 3600 * 1000);
    }
}
