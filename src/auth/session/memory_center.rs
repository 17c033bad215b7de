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
    /// The OpenID login's single-use values (login state, seen `jti`s) -> (value, expires).
    oidc: HashMap<String, (String, Instant)>,
    /// Provider session -> the gateway sessions it began, expires.
    oidc_links: HashMap<String, (Vec<String>, Instant)>,
    /// OpenID writes since the OpenID maps were last swept.
    oidc_writes: usize,
}

struct RefreshEntry {
    sid: String,
    used: bool,
    expires_at: Instant,
    /// Set by a rotation with a grace, like `{P}refresh-grace:{hash}` in Redis.
    grace: Option<Grace>,
}

/// What a used token's grace needs, until `until`.
struct Grace {
    sealed: String,
    next_hash: String,
    device: String,
    until: Instant,
}

impl CenterState {
    /// Every [`OIDC_SWEEP_EVERY`] writes, drops the expired OpenID records: amortised, so a
    /// write never walks the whole map.
    fn sweep_oidc(&mut self, now: Instant) {
        self.oidc_writes += 1;
        if self.oidc_writes >= OIDC_SWEEP_EVERY {
            self.oidc_writes = 0;
            self.oidc.retain(|_, (_, at)| *at > now);
            self.oidc_links.retain(|_, (_, at)| *at > now);
        }
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        self.refresh.retain(|_, r| r.expires_at > now);
        for r in self.refresh.values_mut() {
            if r.grace.as_ref().is_some_and(|g| g.until <= now) {
                r.grace = None;
            }
        }
        self.counters.retain(|_, (_, at)| *at > now);
        self.oidc.retain(|_, (_, at)| *at > now);
        self.oidc_links.retain(|_, (_, at)| *at > now);
    }
}

/// OpenID writes between two sweeps of the OpenID maps.
const OIDC_SWEEP_EVERY: usize = 1024;

fn later(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl.min(MAX_TTL)).unwrap_or(now)
}

impl MemoryStore {
    pub(super) fn oidc_put(&self, key: String, value: &str, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.center.sweep_oidc(now);
        inner
            .center
            .oidc
            .insert(key, (value.to_owned(), later(now, ttl)));
    }

    pub(super) fn oidc_take(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        let taken = self.lock().center.oidc.remove(key)?;
        (taken.1 > now).then_some(taken.0)
    }

    pub(super) fn oidc_first(&self, key: String, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.center.sweep_oidc(now);
        match inner.center.oidc.get(&key) {
            Some((_, until)) if *until > now => false,
            _ => {
                inner
                    .center
                    .oidc
                    .insert(key, (String::new(), later(now, ttl)));
                true
            }
        }
    }

    pub(super) fn oidc_link(&self, key: String, sid: &str, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.center.sweep_oidc(now);
        let entry = inner
            .center
            .oidc_links
            .entry(key)
            .or_insert_with(|| (Vec::new(), now));
        if !entry.0.iter().any(|s| s == sid) {
            entry.0.push(sid.to_owned());
        }
        entry.1 = later(now, ttl);
    }

    pub(super) fn oidc_linked(&self, key: &str) -> Vec<String> {
        let now = Instant::now();
        match self.lock().center.oidc_links.get(key) {
            Some((sids, until)) if *until > now => sids.clone(),
            _ => Vec::new(),
        }
    }

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
                grace: None,
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
        let revoke = |inner: &mut super::memory::Inner| {
            inner.remove(&sid);
            if let Some(e) = inner.center.refresh.get_mut(r.old_hash) {
                e.grace = None;
            }
        };
        if used {
            if let Some(again) = again(inner, r, &sid, now) {
                if matches!(again, RefreshOutcome::BindingMismatch { .. }) {
                    revoke(inner);
                }
                return again;
            }
            revoke(inner);
            return RefreshOutcome::Reused { sid };
        }
        let Some(entry) = inner.live(&sid, now) else {
            mark_used(inner);
            return RefreshOutcome::SessionGone;
        };
        if mismatch(&entry.record, r.binding) {
            mark_used(inner);
            revoke(inner);
            return RefreshOutcome::BindingMismatch { sid };
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
        if let Some(e) = inner.center.refresh.get_mut(r.old_hash) {
            e.used = true;
            e.grace = (!r.grace.is_zero()).then(|| Grace {
                sealed: r.sealed_successor.to_owned(),
                next_hash: r.new_hash.to_owned(),
                device: r.device.to_owned(),
                until: later(now, r.grace),
            });
        }
        inner.center.refresh.insert(
            r.new_hash.to_owned(),
            RefreshEntry {
                sid,
                used: false,
                expires_at,
                grace: None,
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

/// Whether the session's recorded device or address differs from the presented one (a
/// session without one is not bound).
fn mismatch(record: &super::SessionRecord, binding: Binding<'_>) -> bool {
    let bound = match binding {
        Binding::None => None,
        Binding::Device(d) => record.device_id.as_deref().map(|b| (b, d)),
        Binding::Ip(ip) => record.ip.as_deref().map(|b| (b, ip)),
    };
    bound.is_some_and(|(want, got)| !want.is_empty() && want != got)
}

/// The grace of a used token: `Again` when it was rotated less than the grace ago, from the
/// same device, into a successor still live, and the session lives (`BindingMismatch` when
/// that session is bound elsewhere); `None` when this is plain reuse.
fn again(
    inner: &mut super::memory::Inner,
    r: &Rotation<'_>,
    sid: &str,
    now: Instant,
) -> Option<RefreshOutcome> {
    let grace = inner.center.refresh.get(r.old_hash)?.grace.as_ref()?;
    if grace.until <= now || grace.device != r.device {
        return None;
    }
    let next_live = inner
        .center
        .refresh
        .get(&grace.next_hash)
        .is_some_and(|n| !n.used && n.expires_at > now);
    let sealed = grace.sealed.clone();
    if !next_live {
        return None;
    }
    let entry = inner.live(sid, now)?;
    if mismatch(&entry.record, r.binding) {
        return Some(RefreshOutcome::BindingMismatch {
            sid: sid.to_owned(),
        });
    }
    Some(RefreshOutcome::Again {
        sid: sid.to_owned(),
        user_id: entry.record.user_id.clone(),
        roles: entry.record.roles.clone(),
        remaining: entry.expires_at.saturating_duration_since(now),
        sealed,
    })
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
            claims: Vec::new(),
        }
    }

    fn rot<'a>(old: &'a str, new: &'a str, binding: Binding<'a>) -> Rotation<'a> {
        Rotation {
            sid: None,
            old_hash: old,
            new_hash: new,
            binding,
            max_uses: 2,
            fallback_ttl: HOUR,
            grace: Duration::ZERO,
            sealed_successor: "",
            device: "",
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
            RefreshOutcome::Reused { sid: "s1".into() }
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
            RefreshOutcome::BindingMismatch { sid: "s1".into() }
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
            RefreshOutcome::BindingMismatch { sid: "s1".into() }
        );
    }

    #[test]
    fn a_replay_within_the_grace_gets_the_same_successor() {
        let store = MemoryStore::new();
        store.begin(&session(Some("d1")), "h0", HOUR).unwrap();
        let graced = |old: &'static str, new: &'static str, device: &'static str| Rotation {
            grace: Duration::from_secs(10),
            sealed_successor: "SEALED",
            device,
            ..rot(old, new, Binding::Device(device))
        };
        assert!(matches!(
            store.rotate(&graced("h0", "h1", "d1")),
            RefreshOutcome::Rotated { .. }
        ));
        for _ in 0..3 {
            let again = store.rotate(&graced("h0", "hx", "d1"));
            assert!(
                matches!(&again, RefreshOutcome::Again { sealed, sid, .. } if sealed == "SEALED" && sid == "s1"),
                "{again:?}"
            );
        }
        assert_eq!(
            store.get("s1").unwrap().refresh_count,
            1,
            "no second rotation"
        );
        // Past the grace it is reuse.
        let later = Instant::now() + Duration::from_secs(11);
        assert_eq!(
            store.rotate_at(&graced("h0", "hx", "d1"), later),
            RefreshOutcome::Reused { sid: "s1".into() }
        );
        assert!(store.get("s1").is_none());

        // From another device within the grace: reuse too (the session is bound to d1).
        store.begin(&session(Some("d1")), "g0", HOUR).unwrap();
        store.rotate(&graced("g0", "g1", "d1"));
        assert_eq!(
            store.rotate(&graced("g0", "gx", "d2")),
            RefreshOutcome::Reused { sid: "s1".into() }
        );
        assert!(store.get("s1").is_none());

        // Once the successor itself is used, the old token has no grace left.
        store.begin(&session(Some("d1")), "k0", HOUR).unwrap();
        store.rotate(&graced("k0", "k1", "d1"));
        store.rotate(&graced("k1", "k2", "d1"));
        assert_eq!(
            store.rotate(&graced("k0", "kx", "d1")),
            RefreshOutcome::Reused { sid: "s1".into() }
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
