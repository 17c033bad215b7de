//! A local cache of Redis sessions kept coherent by Redis itself: server-assisted client-side
//! caching (RESP3 `CLIENT TRACKING ... BCAST PREFIX {P}session:`). Redis pushes an
//! `invalidate` message on a dedicated connection for every write, delete or expiry of a
//! session key, on any client, and the entry is dropped; the next request reads Redis again.
//! So a steady stream of requests costs no Redis round trip, and a logout still applies at once.
//!
//! Fail closed: while the invalidation link is down (not yet connected, dropped, or silent past
//! the heartbeat) the cache is empty and every lookup goes to Redis. A fill that raced with an
//! invalidation is discarded (the slot is marked pending before the read, and an invalidation
//! removes the mark). Bounded: at most `MAX_ENTRIES` entries, and none older than `BACKSTOP`.
//!
//! Open tunnels (upgraded connections) [`subscribe`](SessionCache::subscribe) to their session
//! id: every invalidation of it, and every flush (the link went up or down, the database was
//! flushed), wakes them to read the store again, so a revocation ends the tunnel at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch, Notify};

use super::session::{probe, SessionRecord, StoreError, Target};
use crate::config;

const SHARDS: usize = 16;
/// Sessions kept in memory at most (a few hundred bytes each).
pub const MAX_ENTRIES: usize = 100_000;
/// No entry is served older than this, whatever the link says.
pub const BACKSTOP: Duration = Duration::from_secs(30);
/// The link is checked this often; a silent link empties the cache within about this long.
const HEARTBEAT: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// What the cache says about a session id.
pub enum Lookup {
    /// Cached: the record, or `None` for a session known not to exist.
    Hit(Option<Arc<SessionRecord>>),
    /// Not cached: read the store, then [`SessionCache::fill`] with this ticket.
    Miss(Ticket),
    /// The invalidation link is down: read the store and do not fill.
    Bypass,
}

pub struct Ticket {
    id: u64,
    epoch: u64,
}

enum Slot {
    Pending(u64),
    Ready {
        record: Option<Arc<SessionRecord>>,
        at: Instant,
    },
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
    pub flushes: AtomicU64,
}

struct Inner {
    shards: Box<[Mutex<HashMap<String, Slot>>]>,
    /// True while the invalidation link is connected and tracking is on.
    live: AtomicBool,
    /// Bumped by every flush, so a fill started before it is discarded.
    epoch: AtomicU64,
    next_ticket: AtomicU64,
    key_prefix: String,
    /// Session keys carry their id as a hash tag (a cluster).
    cluster: bool,
    stats: CacheStats,
    /// Open tunnels by session id, woken by every invalidation of their session.
    tunnels: Mutex<HashMap<String, Vec<Waker>>>,
    next_tunnel: AtomicU64,
    /// Counts flushes (and link changes): tunnels re-check their session on each.
    flushed: watch::Sender<u64>,
}

/// One open tunnel's wake-up: its subscription id and the notifier it waits on.
type Waker = (u64, Arc<Notify>);

/// An open tunnel's registration: woken when its session may have changed. Deregisters on drop.
pub struct Subscription {
    inner: Arc<Inner>,
    sid: String,
    id: u64,
    notify: Arc<Notify>,
    flushed: watch::Receiver<u64>,
}

#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("live", &self.is_live())
            .field("entries", &self.len())
            .finish()
    }
}

impl crate::observe::metrics::CacheView for SessionCache {
    fn counters(&self) -> crate::observe::metrics::CacheCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.stats();
        crate::observe::metrics::CacheCounters {
            hits: stats.hits.load(Relaxed),
            misses: stats.misses.load(Relaxed),
            invalidations: stats.invalidations.load(Relaxed),
            flushes: stats.flushes.load(Relaxed),
            entries: self.len(),
            live: self.is_live(),
        }
    }
}

impl SessionCache {
    /// Starts the invalidation link in the background (the cache bypasses itself until it is
    /// up). Needs a tokio runtime.
    /// `store_moves` changes when the store's reading connection is replaced: the cache is
    /// emptied then too, so no entry read from a node the links do not track outlives it
    /// (behind Sentinel the store and the links each follow the master in their own time).
    pub fn start(
        cfg: &config::Session,
        store_moves: Option<watch::Receiver<u64>>,
    ) -> Result<SessionCache, StoreError> {
        let target = Arc::new(Target::new(&cfg.redis, ProtocolVersion::RESP3, false)?);
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            next_ticket: AtomicU64::new(1),
            key_prefix: format!("{}session:", cfg.key_prefix),
            cluster: target.is_cluster(),
            stats: CacheStats::default(),
            tunnels: Mutex::new(HashMap::new()),
            next_tunnel: AtomicU64::new(1),
            flushed: watch::Sender::new(0),
        });
        tokio::spawn(run_link(Arc::downgrade(&inner), target, cfg.timeout));
        if let Some(mut moves) = store_moves {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                while moves.changed().await.is_ok() {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.flush();
                }
            });
        }
        Ok(SessionCache { inner })
    }

    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn lookup(&self, sid: &str) -> Lookup {
        let inner = &self.inner;
        if !inner.live.load(Ordering::Acquire) {
            return Lookup::Bypass;
        }
        // Read the epoch before looking: a flush after this point voids the ticket.
        let epoch = inner.epoch.load(Ordering::Acquire);
        let mut shard = lock(inner.shard(sid));
        if let Some(Slot::Ready { record, at }) = shard.get(sid) {
            if at.elapsed() < BACKSTOP {
                inner.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Hit(record.clone());
            }
        }
        inner.stats.misses.fetch_add(1, Ordering::Relaxed);
        if shard.len() >= MAX_ENTRIES / SHARDS {
            evict(&mut shard);
        }
        let id = inner.next_ticket.fetch_add(1, Ordering::Relaxed);
        shard.insert(sid.to_owned(), Slot::Pending(id));
        Lookup::Miss(Ticket { id, epoch })
    }

    /// Stores what the store answered, unless an invalidation or a flush came in between.
    pub fn fill(&self, sid: &str, ticket: Ticket, record: Option<SessionRecord>) {
        let inner = &self.inner;
        let mut shard = lock(inner.shard(sid));
        let still_ours = matches!(shard.get(sid), Some(Slot::Pending(id)) if *id == ticket.id);
        if !still_ours {
            return;
        }
        if inner.epoch.load(Ordering::Acquire) != ticket.epoch
            || !inner.live.load(Ordering::Acquire)
        {
            shard.remove(sid);
            return;
        }
        shard.insert(
            sid.to_owned(),
            Slot::Ready {
                record: record.map(Arc::new),
                at: Instant::now(),
            },
        );
    }

    /// Drops `sid` now, without waiting for Redis' push: for this instance's own revocations,
    /// so its very next request is refused even if the push is still in flight.
    pub fn invalidate(&self, sid: &str) {
        self.inner
            .stats
            .invalidations
            .fetch_add(1, Ordering::Relaxed);
        lock(self.inner.shard(sid)).remove(sid);
        self.inner.wake(sid);
    }

    /// Registers an open tunnel of session `sid`: [`Subscription::changed`] returns after every
    /// invalidation of `sid` and every flush that happens from now on.
    pub fn subscribe(&self, sid: &str) -> Subscription {
        let inner = &self.inner;
        let id = inner.next_tunnel.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        lock(&inner.tunnels)
            .entry(sid.to_owned())
            .or_default()
            .push((id, notify.clone()));
        let mut flushed = inner.flushed.subscribe();
        flushed.mark_unchanged();
        Subscription {
            inner: inner.clone(),
            sid: sid.to_owned(),
            id,
            notify,
            flushed,
        }
    }

    /// Open tunnels registered (for tests and metrics).
    pub fn tunnels(&self) -> usize {
        lock(&self.inner.tunnels).values().map(Vec::len).sum()
    }

    /// The store failed: forget the pending mark.
    pub fn abandon(&self, sid: &str, ticket: Ticket) {
        let mut shard = lock(self.inner.shard(sid));
        if matches!(shard.get(sid), Some(Slot::Pending(id)) if *id == ticket.id) {
            shard.remove(sid);
        }
    }
}

impl Inner {
    fn shard(&self, sid: &str) -> &Mutex<HashMap<String, Slot>> {
        // FNV-1a: cheap, and the shard only spreads lock contention.
        let mut h: u32 = 0x811c9dc5;
        for b in sid.bytes() {
            h = (h ^ b as u32).wrapping_mul(0x01000193);
        }
        &self.shards[h as usize % SHARDS]
    }

    fn invalidate_key(&self, key: &[u8]) {
        let Some(tail) = key
            .strip_prefix(self.key_prefix.as_bytes())
            .and_then(|s| std::str::from_utf8(s).ok())
        else {
            return;
        };
        // On a cluster the id is the key's hash tag: `{P}session:{<sid>}`.
        let sid = if self.cluster {
            match tail.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(sid) => sid,
                None => return,
            }
        } else {
            tail
        };
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        lock(self.shard(sid)).remove(sid);
        self.wake(sid);
    }

    /// Wakes every tunnel of `sid` (a permit is kept for one that is not waiting right now).
    fn wake(&self, sid: &str) {
        if let Some(subs) = lock(&self.tunnels).get(sid) {
            for (_, n) in subs {
                n.notify_one();
            }
        }
    }

    /// Empties the cache and voids every fill in flight.
    fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        for s in self.shards.iter() {
            lock(s).clear();
        }
        self.flushed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Subscription {
    /// Returns when the session may have changed: it was invalidated (by a push or by this
    /// instance), or the cache was flushed (the link went up or down). A change that came
    /// while the caller was not waiting is reported at once, never lost.
    pub async fn changed(&mut self) {
        tokio::select! {
            _ = self.notify.notified() => {}
            // Err only when the cache is gone, which cannot happen while we hold `inner`.
            _ = self.flushed.changed() => {}
        }
    }

    /// True while the invalidation link is up: then [`changed`](Self::changed) is enough, and
    /// no periodic re-check is needed.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut tunnels = lock(&self.inner.tunnels);
        if let Some(subs) = tunnels.get_mut(&self.sid) {
            subs.retain(|(id, _)| *id != self.id);
            if subs.is_empty() {
                tunnels.remove(&self.sid);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned shard only means a panic elsewhere mid-operation; the map itself is intact.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes room: drops entries past the backstop, then, if still full, arbitrary ones.
fn evict(shard: &mut HashMap<String, Slot>) {
    shard.retain(|_, s| match s {
        Slot::Ready { at, .. } => at.elapsed() < BACKSTOP,
        Slot::Pending(_) => true,
    });
    let target = MAX_ENTRIES / SHARDS * 3 / 4;
    if shard.len() > target {
        let extra: Vec<String> = shard.keys().take(shard.len() - target).cloned().collect();
        for k in extra {
            shard.remove(&k);
        }
    }
}

/// Keeps the invalidation link up for as long as the cache exists.
async fn run_link(weak: Weak<Inner>, target: Arc<Target>, timeout: Duration) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let prefix = inner.key_prefix.clone();
        drop(inner);
        match connect(&target, &prefix, timeout, weak.clone()).await {
            Ok((links, rx)) => {
                backoff = Duration::from_millis(50);
                let Some(inner) = weak.upgrade() else { return };
                inner.flush();
                inner.live.store(true, Ordering::Release);
                drop(inner);
                tracing::debug!(nodes = links.len(), "session cache: invalidation link up");
                serve_link(&weak, &target, links, rx, timeout).await;
                if let Some(inner) = weak.upgrade() {
                    inner.live.store(false, Ordering::Release);
                    inner.flush();
                }
                tracing::warn!("session cache: invalidation link down; reading Redis directly");
            }
            Err(e) => {
                tracing::debug!(error = %e, "session cache: cannot open the invalidation link")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// One tracking connection per master (one, unless on a cluster), all pushing into one
/// channel: in BCAST mode a master tells only of the keys it holds.
type Links = Vec<(String, redis::aio::MultiplexedConnection)>;

async fn connect(
    target: &Target,
    prefix: &str,
    timeout: Duration,
    weak: Weak<Inner>,
) -> Result<(Links, mpsc::UnboundedReceiver<PushInfo>), redis::RedisError> {
    let (tx, rx) = mpsc::unbounded_channel();
    // An invalidation is applied by the connection's reader itself, the moment it is parsed:
    // no hop through a channel and another task, so a request the worker takes up after the
    // push's bytes were read finds the session gone. Other pushes (a disconnection) go to
    // `serve_link`.
    let sender = move |push: PushInfo| -> Result<(), redis::aio::SendError> {
        if push.kind == PushKind::Invalidate {
            if let Some(inner) = weak.upgrade() {
                apply_invalidation(&inner, &push.data);
            }
            return Ok(());
        }
        tx.send(push).map_err(|_| redis::aio::SendError)
    };
    let deadline = timeout.max(Duration::from_millis(500));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(deadline))
        .set_response_timeout(Some(deadline))
        .set_push_sender(sender);
    let attempt = async {
        let mut links = Vec::new();
        for (addr, client) in target.masters().await? {
            let mut con = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(prefix)
                .query_async::<()>(&mut con)
                .await?;
            links.push((addr, con));
        }
        Ok::<_, redis::RedisError>(links)
    };
    let links = tokio::time::timeout(deadline * 2, attempt)
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    Ok((links, rx))
}

/// Applies invalidations until a link drops, stops answering the heartbeat, (behind
/// Sentinel) its node stops being the master, or (on a cluster) the masters change: the
/// cache is emptied and the links are made again to the masters of now.
async fn serve_link(
    weak: &Weak<Inner>,
    target: &Target,
    links: Links,
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    timeout: Duration,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let follows_master = target.follows_master();
    let masters: Vec<&str> = links.iter().map(|(a, _)| a.as_str()).collect();
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            push = rx.recv() => {
                let Some(push) = push else { return };
                // Invalidations never come here: the connection's reader applies them.
                if push.kind == PushKind::Disconnection || weak.strong_count() == 0 {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if weak.strong_count() == 0 {
                    return;
                }
                let deadline = timeout.max(Duration::from_millis(250)).min(HEARTBEAT * 2);
                let probes = links.iter().map(|(_, con)| probe(con.clone(), follows_master));
                let all = futures_util::future::join_all(probes);
                match tokio::time::timeout(deadline, all).await {
                    Ok(results) if results.iter().all(Result::is_ok) => {}
                    _ => return,
                }
                ticks = ticks.wrapping_add(1);
                // Behind Sentinel, every 4th beat (2 s): a master cut off from the sentinels
                // still says "master", so the sentinels are asked which one is.
                if ticks.is_multiple_of(4) && target.check_named(&links[0].0, deadline).await.is_err() {
                    return;
                }
                // A cluster's masters are compared on every beat (500 ms): a failover, or a
                // resharding that gives slots to a master without a link, makes new links
                // (the cache is emptied meanwhile).
                if target.is_cluster() {
                    let mut con = links[0].1.clone();
                    let mut cmd = redis::cmd("CLUSTER");
                    cmd.arg("SLOTS");
                    let slots = cmd.query_async::<Value>(&mut con);
                    let now = match tokio::time::timeout(deadline, slots).await {
                        Ok(Ok(v)) => target.master_addrs(&v),
                        _ => return,
                    };
                    if !now.is_ok_and(|mut now| {
                        let mut was = masters.clone();
                        now.sort_unstable();
                        was.sort_unstable();
                        now == was
                    }) {
                        return;
                    }
                }
            }
        }
    }
}

/// `invalidate` carries an array of keys, or nil when the whole database was flushed.
fn apply_invalidation(inner: &Inner, data: &[Value]) {
    for v in data {
        match v {
            Value::Array(keys) => {
                for k in keys {
                    if let Value::BulkString(k) = k {
                        inner.invalidate_key(k);
                    }
                }
            }
            Value::BulkString(k) => inner.invalidate_key(k),
            Value::Nil => inner.flush(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(live: bool) -> SessionCache {
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            live: AtomicBool::new(live),
            epoch: AtomicU64::new(0),
            next_ticket: AtomicU64::new(1),
            key_prefix: "gw:session:".into(),
            cluster: false,
            stats: CacheStats::default(),
            tunnels: Mutex::new(HashMap::new()),
            next_tunnel: AtomicU64::new(1),
            flushed: watch::Sender::new(0),
        });
        SessionCache { inner }
    }

    fn rec(user: &str) -> SessionRecord {
        SessionRecord {
            user_id: user.into(),
            roles: None,
            created_at: None,
            ip: None,
            user_agent: None,
            device_id: None,
            refresh_count: 0,
            claims: Vec::new(),
            roles_header: Default::default(),
        }
    }

    fn miss(c: &SessionCache, sid: &str) -> Ticket {
        match c.lookup(sid) {
            Lookup::Miss(t) => t,
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn miss_fill_hit() {
        let c = cache(true);
        let t = miss(&c, "s1");
        c.fill("s1", t, Some(rec("alice")));
        match c.lookup("s1") {
            Lookup::Hit(Some(r)) => assert_eq!(r.user_id, "alice"),
            _ => panic!("expected a hit"),
        }
    }

    #[test]
    fn bypass_while_the_link_is_down() {
        let c = cache(false);
        assert!(matches!(c.lookup("s1"), Lookup::Bypass));
    }

    #[test]
    fn invalidation_drops_the_entry() {
        let c = cache(true);
        let t = miss(&c, "s1");
        c.fill("s1", t, Some(rec("alice")));
        apply_invalidation(
            &c.inner,
            &[Value::Array(vec![Value::BulkString(
                b"gw:session:s1".to_vec(),
            )])],
        );
        assert!(matches!(c.lookup("s1"), Lookup::Miss(_)));
    }

    #[test]
    fn an_invalidation_during_the_read_voids_the_fill() {
        let c = cache(true);
        let t = miss(&c, "s1");
        apply_invalidation(
            &c.inner,
            &[Value::Array(vec![Value::BulkString(
                b"gw:session:s1".to_vec(),
            )])],
        );
        c.fill("s1", t, Some(rec("alice")));
        assert!(matches!(c.lookup("s1"), Lookup::Miss(_)), "stale fill kept");
    }

    #[test]
    fn a_flush_during_the_read_voids_the_fill() {
        let c = cache(true);
        let t = miss(&c, "s1");
        c.inner.flush();
        // Another lookup re-marks the slot; the old ticket must still not fill it.
        let t2 = miss(&c, "s1");
        c.fill("s1", t, Some(rec("stale")));
        assert!(matches!(c.lookup("s1"), Lookup::Miss(_)));
        c.fill("s1", t2, Some(rec("fresh")));
    }

    #[test]
    fn nil_invalidation_flushes_everything() {
        let c = cache(true);
        for sid in ["a", "b", "c"] {
            let t = miss(&c, sid);
            c.fill(sid, t, None);
        }
        apply_invalidation(&c.inner, &[Value::Nil]);
        assert!(c.is_empty());
    }

    #[test]
    fn other_prefixes_are_ignored() {
        let c = cache(true);
        let t = miss(&c, "s1");
        c.fill("s1", t, Some(rec("alice")));
        apply_invalidation(
            &c.inner,
            &[Value::Array(vec![Value::BulkString(b"other:s1".to_vec())])],
        );
        assert!(matches!(c.lookup("s1"), Lookup::Hit(Some(_))));
    }

    #[test]
    fn bounded() {
        let c = cache(true);
        for i in 0..(MAX_ENTRIES + 5_000) {
            let sid = format!("s{i}");
            let t = miss(&c, &sid);
            c.fill(&sid, t, None);
        }
        assert!(c.len() <= MAX_ENTRIES, "{}", c.len());
    }

    /// True when `changed` returns promptly (a pending wake-up), false when it would block.
    async fn woken(sub: &mut Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sub.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_tunnel_is_woken_by_its_own_sid_only() {
        let c = cache(true);
        let mut a = c.subscribe("s1");
        let mut b = c.subscribe("s2");
        assert!(!woken(&mut a).await, "nothing happened yet");
        // A push, while nobody waits: the wake-up is kept, not lost.
        apply_invalidation(
            &c.inner,
            &[Value::Array(vec![Value::BulkString(
                b"gw:session:s1".to_vec(),
            )])],
        );
        assert!(woken(&mut a).await);
        assert!(!woken(&mut b).await, "another session's tunnel sleeps on");
        // This instance's own revocation wakes it too.
        c.invalidate("s2");
        assert!(woken(&mut b).await);
    }

    #[tokio::test]
    async fn a_flush_wakes_every_tunnel() {
        let c = cache(true);
        let mut a = c.subscribe("s1");
        let mut b = c.subscribe("s2");
        c.inner.flush();
        assert!(woken(&mut a).await);
        assert!(woken(&mut b).await);
        assert!(!woken(&mut a).await, "one flush, one wake-up");
    }

    #[test]
    fn a_closed_tunnel_deregisters() {
        let c = cache(true);
        let a = c.subscribe("s1");
        let b = c.subscribe("s1");
        assert_eq!(c.tunnels(), 2);
        drop(a);
        assert_eq!(c.tunnels(), 1);
        drop(b);
        assert_eq!(c.tunnels(), 0);
        assert!(lock(&c.inner.tunnels).is_empty());
    }
}
