//! The in-process session store: the Redis store's semantics for a single instance (tests,
//! demos). Sessions expire like Redis keys: an expired one is never returned and is removed
//! when it is next touched, and a periodic sweep on writes keeps memory bounded.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{NewSession, SessionRecord, StoreError, MAX_TTL};

/// A sweep of every expired session runs after this many creates.
const SWEEP_EVERY: usize = 1024;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    // Counts only: the records hold user ids and addresses, which do not belong in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("sessions", &inner.sessions.len())
            .field("users", &inner.by_user.len())
            .finish()
    }
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) sessions: HashMap<String, Entry>,
    /// user id -> sids, like `{P}user-sessions:{user_id}`.
    pub(super) by_user: HashMap<String, HashSet<String>>,
    creates_since_sweep: usize,
    /// The auth center's records: refresh tokens, users, login-failure counters.
    pub(super) center: super::memory_center::CenterState,
}

pub(super) struct Entry {
    pub(super) record: SessionRecord,
    pub(super) expires_at: Instant,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn get(&self, sid: &str) -> Option<SessionRecord> {
        self.get_at(sid, Instant::now())
    }

    pub fn create(&self, new: &NewSession, ttl: Duration) -> Result<(), StoreError> {
        self.create_at(new, ttl, Instant::now())
    }

    pub fn delete(&self, sid: &str) -> bool {
        self.delete_at(sid, Instant::now())
    }

    /// Creates the session unless a live one has this id; `Ok(false)` leaves that one as it
    /// was. Check and write happen under one lock, so two racing creates cannot both win.
    pub fn create_if_absent(&self, new: &NewSession, ttl: Duration) -> Result<bool, StoreError> {
        self.create_if_absent_at(new, ttl, Instant::now())
    }

    pub fn list_for_user(&self, user_id: &str) -> Vec<(String, SessionRecord)> {
        self.list_for_user_at(user_id, Instant::now())
    }

    // The `*_at` forms take the clock as an argument so tests can move it.

    fn get_at(&self, sid: &str, now: Instant) -> Option<SessionRecord> {
        let mut inner = self.lock();
        match inner.sessions.get(sid) {
            Some(entry) if entry.expires_at > now => Some(entry.record.clone()),
            Some(_) => {
                inner.remove(sid);
                None
            }
            None => None,
        }
    }

    fn create_at(&self, new: &NewSession, ttl: Duration, now: Instant) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.create(new, ttl, now)
    }

    fn create_if_absent_at(
        &self,
        new: &NewSession,
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.live(&new.sid, now).is_some() {
            return Ok(false);
        }
        inner.create(new, ttl, now).map(|()| true)
    }

    fn delete_at(&self, sid: &str, now: Instant) -> bool {
        let mut inner = self.lock();
        inner
            .remove(sid)
            .is_some_and(|entry| entry.expires_at > now)
    }

    fn list_for_user_at(&self, user_id: &str, now: Instant) -> Vec<(String, SessionRecord)> {
        let mut inner = self.lock();
        let sids: Vec<String> = match inner.by_user.get(user_id) {
            Some(sids) => sids.iter().cloned().collect(),
            None => return Vec::new(),
        };
        let mut live = Vec::new();
        for sid in sids {
            match inner.sessions.get(&sid) {
                Some(entry) if entry.expires_at > now => {
                    live.push((sid, entry.record.clone()));
                }
                _ => {
                    inner.remove(&sid);
                }
            }
        }
        live.sort_by(|a, b| (a.1.created_at, &a.0).cmp(&(b.1.created_at, &b.0)));
        live
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, and every critical section leaves `Inner`
        // consistent at each step, so a poisoned lock still holds good data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Writes a session (replacing any with the same id) and adds it to its user's set.
    pub(super) fn create(
        &mut self,
        new: &NewSession,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), StoreError> {
        new.validate(ttl)?;
        // Through the same fields as Redis, so what reads back is the same in both stores.
        let record = SessionRecord::from_fields(new.fields())
            .ok_or_else(|| StoreError::Invalid("session without user id".into()))?;
        let expires_at = now
            .checked_add(ttl.min(MAX_TTL))
            .ok_or_else(|| StoreError::Invalid("session TTL too long".into()))?;
        self.remove(&new.sid);
        self.by_user
            .entry(new.user_id.clone())
            .or_default()
            .insert(new.sid.clone());
        self.sessions
            .insert(new.sid.clone(), Entry { record, expires_at });
        self.creates_since_sweep += 1;
        if self.creates_since_sweep >= SWEEP_EVERY {
            self.sweep(now);
        }
        Ok(())
    }

    /// The live session `sid`, removing it when it has expired.
    pub(super) fn live(&mut self, sid: &str, now: Instant) -> Option<&mut Entry> {
        if self.sessions.get(sid).is_some_and(|e| e.expires_at <= now) {
            self.remove(sid);
        }
        self.sessions.get_mut(sid)
    }

    /// Removes a session and its id from its user's set.
    pub(super) fn remove(&mut self, sid: &str) -> Option<Entry> {
        let entry = self.sessions.remove(sid)?;
        let user_id = &entry.record.user_id;
        if let Some(sids) = self.by_user.get_mut(user_id) {
            sids.remove(sid);
            if sids.is_empty() {
                self.by_user.remove(user_id);
            }
        }
        Some(entry)
    }

    fn sweep(&mut self, now: Instant) {
        self.sessions.retain(|_, entry| entry.expires_at > now);
        let sessions = &self.sessions;
        self.by_user.retain(|_, sids| {
            sids.retain(|sid| sessions.contains_key(sid));
            !sids.is_empty()
        });
        self.center.sweep(now);
        self.creates_since_sweep = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_if_absent_never_touches_a_live_session() {
        let store = MemoryStore::new();
        let now = Instant::now();
        let first = new_session("s1", "alice", 1);
        assert_eq!(store.create_if_absent_at(&first, HOUR, now), Ok(true));
        let mut other = new_session("s1", "mallory", 2);
        other.roles = Some(vec!["root".into()]);
        assert_eq!(store.create_if_absent_at(&other, HOUR, now), Ok(false));
        let kept = store.get_at("s1", now).unwrap();
        assert_eq!(kept.user_id, "alice");
        assert_eq!(kept.created_at, Some(1));
        assert!(store.list_for_user_at("mallory", now).is_empty());
        // Once the first has expired, the id is free again.
        let later = now + HOUR + Duration::from_secs(1);
        assert_eq!(store.create_if_absent_at(&other, HOUR, later), Ok(true));
        assert_eq!(store.get_at("s1", later).unwrap().user_id, "mallory");
    }

    fn new_session(sid: &str, user_id: &str, created_at: u64) -> NewSession {
        NewSession {
            sid: sid.into(),
            user_id: user_id.into(),
            roles: Some(vec!["admin".into(), " ops".into()]),
            created_at,
            ip: Some("10.0.0.1".into()),
            user_agent: Some("ua".into()),
            device_id: None,
            claims: Vec::new(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn create_get_delete() {
        let store = MemoryStore::new();
        store.create(&new_session("s1", "u1", 5), HOUR).unwrap();
        let r = store.get("s1").unwrap();
        assert_eq!(r.user_id, "u1");
        assert_eq!(r.roles, Some(vec!["admin".to_owned(), "ops".to_owned()]));
        assert_eq!(r.created_at, Some(5));
        assert_eq!(r.device_id, None);
        assert_eq!(r.refresh_count, 0);
        assert!(store.delete("s1"));
        assert!(store.get("s1").is_none());
        assert!(!store.delete("s1"));
        assert!(store.list_for_user("u1").is_empty());
    }

    #[test]
    fn sessions_expire() {
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        store
            .create_at(&new_session("s1", "u1", 1), secs(10), t0)
            .unwrap();
        store
            .create_at(&new_session("s2", "u1", 2), HOUR, t0)
            .unwrap();
        assert!(store.get_at("s1", t0 + secs(9)).is_some());
        assert!(store.get_at("s1", t0 + secs(10)).is_none());
        assert!(!store.delete_at("s1", t0 + secs(11)));
        let listed: Vec<String> = store
            .list_for_user_at("u1", t0 + secs(11))
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(listed, ["s2"]);
    }

    #[test]
    fn expired_sessions_are_pruned_from_the_user_list() {
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1);
        store
            .create_at(&new_session("s1", "u1", 1), ttl, t0)
            .unwrap();
        assert!(store.list_for_user_at("u1", t0 + ttl).is_empty());
        assert!(store.lock().by_user.is_empty());
        assert!(store.lock().sessions.is_empty());
    }

    #[test]
    fn recreating_a_sid_moves_it_to_the_new_user() {
        let store = MemoryStore::new();
        store.create(&new_session("s1", "u1", 1), HOUR).unwrap();
        store.create(&new_session("s1", "u2", 1), HOUR).unwrap();
        assert!(store.list_for_user("u1").is_empty());
        assert_eq!(store.list_for_user("u2").len(), 1);
        assert_eq!(store.get("s1").unwrap().user_id, "u2");
    }

    #[test]
    fn list_is_oldest_first() {
        let store = MemoryStore::new();
        store.create(&new_session("b", "u", 20), HOUR).unwrap();
        store.create(&new_session("a", "u", 10), HOUR).unwrap();
        store.create(&new_session("c", "other", 0), HOUR).unwrap();
        let listed: Vec<String> = store.list_for_user("u").into_iter().map(|s| s.0).collect();
        assert_eq!(listed, ["a", "b"]);
    }

    #[test]
    fn sweep_purges_expired_sessions() {
        let store = MemoryStore::new();
        let t0 = Instant::now();
        for i in 0..SWEEP_EVERY - 1 {
            let sid = format!("old{i}");
            store
                .create_at(&new_session(&sid, "u", 0), Duration::from_secs(1), t0)
                .unwrap();
        }
        let later = t0 + Duration::from_secs(2);
        store
            .create_at(&new_session("new", "u", 0), HOUR, later)
            .unwrap();
        let inner = store.lock();
        assert_eq!(inner.sessions.len(), 1);
        assert_eq!(inner.by_user["u"].len(), 1);
    }

    #[test]
    fn debug_shows_counts_not_records() {
        let store = MemoryStore::new();
        store
            .create(&new_session("s1", "secret-user", 1), HOUR)
            .unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("secret-user") && !shown.contains("10.0.0.1"));
        assert!(shown.contains("sessions: 1"));
    }

    #[test]
    fn invalid_sessions_are_refused() {
        let store = MemoryStore::new();
        let err = store
            .create(&new_session("s", "u", 0), Duration::ZERO)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)));
        assert!(store
            .create(&new_session("s", "u", 0), Duration::MAX)
            .is_ok());
    }
}
