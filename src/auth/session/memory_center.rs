//! The auth center's records in the memory store, with the Redis scripts' semantics: each
//! operation runs under the store's one mutex, so a refresh rotation is as atomic here as the
//! Lua script is in Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::center::{Admission, Binding, RefreshOutcome, Rotation, UserRecord};
use super::memory::MemoryStore;
use super::{NewSession, StoreError, MAX_TTL};

#[derive(Default)]
pub(super) struct CenterState {
    /// sha256 hex of a refresh token -> its record.
    refresh: HashMap<String, RefreshEntry>,
    users: HashMap<String, UserRecord>,
    /// name -> (count, resets at).
    counters: HashMap<String, (u64, Instant)>,
}

struct RefreshEntry {
    sid: String,
    used: bool,
    expires_at: Instant,
}

impl CenterState {
    pub(super) fn sweep(&mut self, now: Instant) {
        self.refresh.retain(|_, r| r.expires_at > now);
        self.counters.retain(|_, (_, at)| *at > now);
    }
}

fn later(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl.min(MAX_TTL)).unwrap_or(now)
}

impl MemoryStore {
    pub(super) fn begin(
        &self,
        new: &NewSession,
        refresh_hash: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.create(new, ttl, now)?;
        inner.center.refresh.insert(
            refresh_hash.to_owned(),
            RefreshEntry {
                sid: new.sid.clone(),
                used: false,
                expires_at: later(now, ttl),
            },
        );
        Ok(())
    }

    pub(super) fn rotate(&self, r: &Rotation<'_>) -> RefreshOutcome {
        self.rotate_at(r, Instant::now())
    }

    fn rotate_at(&self, r: &Rotation<'_>, now: Instant) -> RefreshOutcome {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (sid, used) = match inner.center.refresh.get(r.old_hash) {
            Some(e) if e.expires_at > now => (e.sid.clone(), e.used),
            _ => return RefreshOutcome::Unknown,
        };
        let mark_used = |inner: &mut super::memory::Inner| {
            if let Some(e) = inner.center.refresh.get_mut(r.old_hash) {
                e.used = true;
            }
        };
        if used {
            inner.remove(&sid);
            return RefreshOutcome::Reused;
        }
        let Some(entry) = inner.live(&sid, now) else {
            mark_used(inner);
            return RefreshOutcome::SessionGone;
        };
        let bound = match r.binding {
            Binding::None => None,
            Binding::Device(d) => entry.record.device_id.as_deref().map(|b| (b, d)),
            Binding::Ip(ip) => entry.record.ip.as_deref().map(|b| (b, ip)),
        };
        if bound.is_some_and(|(want, got)| !want.is_empty() && want != got) {
            mark_used(inner);
            inner.remove(&sid);
            return RefreshOutcome::BindingMismatch;
        }
        if entry.record.refresh_count >= r.max_uses {
            return RefreshOutcome::Exhausted;
        }
        entry.record.refresh_count += 1;
        let outcome = RefreshOutcome::Rotated {
            sid: sid.clone(),
            user_id: entry.record.user_id.clone(),
            roles: entry.record.roles.clone(),
            refresh_count: entry.record.refresh_count,
            remaining: entry.expires_at.saturating_duration_since(now),
        };
        let expires_at = entry.expires_at;
        mark_used(inner);
        inner.center.refresh.insert(
            r.new_hash.to_owned(),
            RefreshEntry {
                sid,
                used: false,
                expires_at,
            },
        );
        outcome
    }

    pub(super) fn delete_for_user(&self, user_id: &str) -> u64 {
        let mut inner = self.lock();
        let sids: Vec<String> = inner
            .by_user
            .get(user_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let now = Instant::now();
        let mut n = 0;
        for sid in sids {
            if inner.remove(&sid).is_some_and(|e| e.expires_at > now) {
                n += 1;
            }
        }
        n
    }

    pub(super) fn get_user(&self, name: &str) -> Option<UserRecord> {
        self.lock().center.users.get(name).cloned()
    }

    pub(super) fn put_user(
        &self,
        name: &str,
        user: &UserRecord,
        replace: bool,
    ) -> Result<bool, StoreError> {
        if user.user_id.is_empty() || user.password_hash.is_empty() {
            return Err(StoreError::Invalid("user without id or hash".into()));
        }
        let mut inner = self.lock();
        if !replace && inner.center.users.contains_key(name) {
            return Ok(false);
        }
        inner.center.users.insert(name.to_owned(), user.clone());
        Ok(true)
    }

    /// `ATTEMPT_LUA` under the lock: check every counter, then count on all or none.
    pub(super) fn count_attempt(&self, counters: &[(String, u64)], window: Duration) -> Admission {
        let now = Instant::now();
        let mut inner = self.lock();
        let live = &mut inner.center.counters;
        for (name, _) in counters {
            if live.get(name).is_some_and(|(_, at)| *at <= now) {
                live.remove(name);
            }
        }
        let wait = counters
            .iter()
            .filter_map(|(name, limit)| live.get(name).filter(|(n, _)| n >= limit))
            .map(|(_, at)| at.saturating_duration_since(now))
            .max();
        if let Some(resets_in) = wait {
            return Admission::Locked { resets_in };
        }
        for (name, _) in counters {
            live.entry(name.clone())
                .or_insert((0, later(now, window)))
                .0 += 1;
        }
        Admission::Counted
    }

    /// `UNCOUNT_LUA` under the lock.
    pub(super) fn uncount_attempt(&self, names: &[String]) {
        let now = Instant::now();
        let mut inner = self.lock();
        for name in names {
            if let Some((n, at)) = inner.center.counters.get_mut(name) {
                if *at > now {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn session(device: Option<&str>) -> NewSession {
        NewSession {
            sid: "s1".into(),
            user_id: "u1".into(),
            roles: Some(vec!["admin".into()]),
            created_at: 1,
            ip: Some("10.0.0.1".into()),
            user_agent: None,
            device_id: device.map(str::to_owned),
        }
    }

    fn rot<'a>(old: &'a str, new: &'a str, binding: Binding<'a>) -> Rotation<'a> {
        Rotation {
            old_hash: old,
            new_hash: new,
            binding,
            max_uses: 2,
            fallback_ttl: HOUR,
        }
    }

    #[test]
    fn rotation_then_reuse_revokes() {
        let store = MemoryStore::new();
        store.begin(&session(None), "h0", HOUR).unwrap();
        let out = store.rotate(&rot("h0", "h1", Binding::None));
        assert!(
            matches!(&out, RefreshOutcome::Rotated { sid, refresh_count: 1, .. } if sid == "s1"),
            "{out:?}"
        );
        assert_eq!(store.get("s1").unwrap().refresh_count, 1);
        assert_eq!(
            store.rotate(&rot("h0", "h2", Binding::None)),
            RefreshOutcome::Reused
        );
        assert!(store.get("s1").is_none());
        assert_eq!(
            store.rotate(&rot("h1", "h3", Binding::None)),
            RefreshOutcome::SessionGone
        );
        assert_eq!(
            store.rotate(&rot("nope", "h4", Binding::None)),
            RefreshOutcome::Unknown
        );
    }

    #[test]
    fn use_count_and_binding() {
        let store = MemoryStore::new();
        store.begin(&session(Some("d1")), "h0", HOUR).unwrap();
        let dev = Binding::Device("d1");
        assert!(matches!(
            store.rotate(&rot("h0", "h1", dev)),
            RefreshOutcome::Rotated { .. }
        ));
        assert!(matches!(
            store.rotate(&rot("h1", "h2", dev)),
            RefreshOutcome::Rotated { .. }
        ));
        assert_eq!(
            store.rotate(&rot("h2", "h3", dev)),
            RefreshOutcome::Exhausted
        );
        assert_eq!(
            store.rotate(&rot("h2", "h3", Binding::Device(""))),
            RefreshOutcome::BindingMismatch
        );
        assert!(store.get("s1").is_none());
    }

    #[test]
    fn ip_binding_and_expiry() {
        let store = MemoryStore::new();
        store.begin(&session(None), "h0", HOUR).unwrap();
        assert!(matches!(
            store.rotate(&rot("h0", "h1", Binding::Ip("10.0.0.1"))),
            RefreshOutcome::Rotated { .. }
        ));
        let later = Instant::now() + HOUR * 2;
        assert_eq!(
            store.rotate_at(&rot("h1", "h2", Binding::None), later),
            RefreshOutcome::Unknown
        );
        assert_eq!(
            store.rotate(&rot("h1", "h2", Binding::Ip("10.0.0.2"))),
            RefreshOutcome::BindingMismatch
        );
    }

    #[test]
    fn users_and_counters() {
        let store = MemoryStore::new();
        let u = UserRecord {
            user_id: "alice".into(),
            password_hash: "h".into(),
            roles: vec![],
        };
        assert!(store.put_user("alice", &u, false).unwrap());
        assert!(!store.put_user("alice", &u, false).unwrap());
        assert!(store.put_user("alice", &u, true).unwrap());
        assert_eq!(store.get_user("alice").unwrap().user_id, "alice");
        let min = Duration::from_secs(60);
        let both = [("a".to_owned(), 2), ("b".to_owned(), 5)];
        assert_eq!(store.count_attempt(&both[..1], min), Admission::Counted);
        assert_eq!(store.count_attempt(&both, min), Admission::Counted);
        // "a" is at its limit: nothing is counted, "b" stays at 1.
        let Admission::Locked { resets_in } = store.count_attempt(&both, min) else {
            panic!("a is at its limit");
        };
        assert!(resets_in <= min && resets_in > Duration::ZERO);
        assert_eq!(store.lock().center.counters["b"].0, 1);
        // A success takes its attempt back, never below zero.
        store.uncount_attempt(&["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        store.uncount_attempt(&["b".to_owned()]);
        assert_eq!(store.lock().center.counters["b"].0, 0);
        assert!(!store.lock().center.counters.contains_key("c"));
        assert_eq!(store.count_attempt(&both, min), Admission::Counted);
    }
}
