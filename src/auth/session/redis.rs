//! The Redis session store: the keys of docs/contract.md, "Session keys in Redis", read and written so that a
//! session created or revoked by another service behaves exactly like one of ours. Writes that
//! touch two keys are Lua scripts, so no reader ever sees half of them.
//!
//! Revocations (logout, kick, sign out everywhere, refresh rotation and reuse) run on a
//! connection of their own and are confirmed by a replica (`WAIT 1`) where the master has one,
//! so an answer of "revoked" survives a failover; `WAIT` holds its connection, so it never
//! stalls the requests on the shared one.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{
    ErrorKind, FromRedisValue, ProtocolVersion, RedisError, Role, Script, ScriptInvocation,
};

use super::connection::{Conn, Link};
use super::target::Target;
use super::{ttl_millis, NewSession, SessionRecord, StoreError};
use crate::config;

/// `KEYS[1]` session hash, `KEYS[2]` the user's set; `ARGV[1]` TTL in ms, `ARGV[2]` sid,
/// `ARGV[3..]` field/value pairs. Replaces the hash, and extends the set's expiry to at least
/// the session's end (a set without expiry, made by someone else, keeps none).
const CREATE_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[2])
redis.call('SADD', KEYS[2], ARGV[2])
if left == -2 or (left >= 0 and left < tonumber(ARGV[1])) then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return 1
";

/// [`CREATE_LUA`] behind a guard: when `KEYS[1]` exists (whoever wrote it), nothing is
/// touched and the answer is 0.
const IF_ABSENT_LUA: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n";

/// `KEYS[1]` session hash; `ARGV[1]` key prefix, `ARGV[2]` sid. Deletes the hash and removes
/// the sid from its user's set (named by the hash's own `user_id`). Returns 1 if it existed.
const DELETE_LUA: &str = r"
local user = redis.call('HGET', KEYS[1], 'user_id')
local existed = redis.call('DEL', KEYS[1])
if user then
  redis.call('SREM', ARGV[1] .. 'user-sessions:' .. user, ARGV[2])
end
return existed
";

/// Sessions in Redis, over one shared self-healing connection.
pub struct RedisStore {
    pub(super) link: Link,
    /// Revocations, each followed by `WAIT` on the same connection.
    durable: Link,
    /// How long a revocation waits for a replica's acknowledgement.
    wait: Duration,
    prefix: String,
    /// Keys follow the cluster layout (`cluster.rs`).
    pub(super) cluster: bool,
    /// Behind Sentinel: every revocation needs a replica's confirmation.
    sentinel: bool,
    /// A replica has been seen: see [`Confirm`].
    replicas_seen: AtomicBool,
    create: Script,
    create_if_absent: Script,
    delete: Script,
}

impl fmt::Debug for RedisStore {
    // The URL may hold a password: it is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Starts connecting in the background and returns at once; see [`Link`]. Fails only on a
    /// node URL that does not parse, a `redis_ca` that cannot be read, or outside a Tokio
    /// runtime.
    pub fn connect(cfg: &config::Session) -> Result<RedisStore, StoreError> {
        let target = Arc::new(Target::new(&cfg.redis, ProtocolVersion::RESP2, false)?);
        // Revocations (rotations among them) are never resent by the client itself.
        let durable = Arc::new(Target::new(&cfg.redis, ProtocolVersion::RESP2, true)?);
        Ok(RedisStore {
            cluster: target.is_cluster(),
            sentinel: target.follows_master(),
            replicas_seen: AtomicBool::new(false),
            link: Link::start(target, cfg.timeout, cfg.max_concurrent)?,
            durable: Link::start(durable, cfg.timeout, cfg.max_concurrent)?,
            // Half the store timeout: the answer still comes within the caller's deadline.
            wait: (cfg.timeout / 2).max(Duration::from_millis(1)),
            prefix: cfg.key_prefix.clone(),
            create: Script::new(CREATE_LUA),
            create_if_absent: Script::new(&format!("{IF_ABSENT_LUA}{CREATE_LUA}")),
            delete: Script::new(DELETE_LUA),
        })
    }

    /// Changes whenever the connection that reads sessions is replaced (behind Sentinel,
    /// possibly by one to another node): a cache filled from it must be emptied then.
    pub fn moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.link.generations()
    }

    /// `session.key_prefix`, for callers that build keys of their own (the auth center).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{P}session:{sid}`; on a cluster `{P}session:{<sid>}` (the id as its hash tag).
    pub fn session_key(&self, sid: &str) -> String {
        if self.cluster {
            format!("{}session:{}", self.prefix, super::cluster::tag(sid))
        } else {
            format!("{}session:{sid}", self.prefix)
        }
    }

    /// `{P}user-sessions:{user_id}`; on a cluster `{P}user-sessions:{<user_id>}`.
    pub fn user_sessions_key(&self, user_id: &str) -> String {
        if self.cluster {
            format!(
                "{}user-sessions:{}",
                self.prefix,
                super::cluster::tag(user_id)
            )
        } else {
            format!("{}user-sessions:{user_id}", self.prefix)
        }
    }

    /// One command on the shared connection, retried once on a fresh connection (for
    /// commands that are safe to repeat).
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.link
            .run(
                true,
                move |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await
    }

    /// One command on the shared connection, never resent (a lost answer may have acted).
    pub(super) async fn query_once<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.link
            .run(
                false,
                move |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await
    }

    pub async fn get(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.session_key(sid));
        let cmd = &cmd;
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .link
            .run(
                true,
                move |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        Ok(SessionRecord::from_fields(fields))
    }

    /// The keys and arguments both session-writing scripts take.
    fn session_invocation<'s>(
        &self,
        script: &'s Script,
        new: &NewSession,
        ttl: Duration,
    ) -> ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.session_key(&new.sid))
            .key(self.user_sessions_key(&new.user_id))
            .arg(ttl_millis(ttl))
            .arg(&new.sid);
        for (name, value) in new.fields() {
            invocation.arg(name).arg(value);
        }
        invocation
    }

    pub async fn create(&self, new: &NewSession, ttl: Duration) -> Result<(), StoreError> {
        new.validate(ttl)?;
        if self.cluster {
            return self.cluster_create(new, ttl, false).await.map(|_| ());
        }
        let invocation = self.session_invocation(&self.create, new, ttl);
        // Idempotent: running it twice leaves the same keys.
        self.run_script_inner::<()>(&invocation, true).await
    }

    pub async fn create_if_absent(
        &self,
        new: &NewSession,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        new.validate(ttl)?;
        if self.cluster {
            return self.cluster_create(new, ttl, true).await;
        }
        let invocation = self.session_invocation(&self.create_if_absent, new, ttl);
        // Not retried: after a lost answer, a second run would find our own session and say 0.
        self.run_script_inner::<i64>(&invocation, false)
            .await
            .map(|n| n == 1)
    }

    pub async fn delete(&self, sid: &str) -> Result<bool, StoreError> {
        if self.cluster {
            return self.cluster_delete(sid).await;
        }
        let key = self.session_key(sid);
        let mut invocation = self.delete.prepare_invoke();
        invocation.key(&key).arg(&self.prefix).arg(sid);
        // Retrying a delete is safe; only its "existed" answer could turn false.
        self.run_revocation::<i64>(&invocation, &key, true, None)
            .await
            .map(|n| n > 0)
    }

    pub async fn list_for_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, SessionRecord)>, StoreError> {
        let set_key = self.user_sessions_key(user_id);
        let set = &set_key;
        let (mut sessions, gone) = self
            .link
            .run(true, move |mut c| async move {
                list_sessions(&mut c, self, set, user_id).await
            })
            .await?;
        self.prune_user_set(&set_key, user_id, &gone).await?;
        sessions.sort_by(|a, b| (a.1.created_at, &a.0).cmp(&(b.1.created_at, &b.0)));
        Ok(sessions)
    }

    /// Takes `sids` out of `user_id`'s set `set`. On a cluster, then puts back those whose
    /// session (the user's) exists by now: a login adds its id, writes the session (another
    /// slot), then adds the id again, and a prune that falls between could otherwise leave a
    /// live session out of its set, out of reach of sign-out-everywhere. (On one node a login
    /// writes both in one script.)
    pub(super) async fn prune_user_set(
        &self,
        set: &str,
        user_id: &str,
        sids: &[String],
    ) -> Result<(), StoreError> {
        if sids.is_empty() {
            return Ok(());
        }
        let mut srem = redis::cmd("SREM");
        srem.arg(set).arg(sids);
        self.query::<i64>(&srem).await?;
        if !self.cluster {
            return Ok(());
        }
        for sid in sids {
            let mut owner = redis::cmd("HGET");
            owner.arg(self.session_key(sid)).arg("user_id");
            if self.query::<Option<String>>(&owner).await?.as_deref() == Some(user_id) {
                let mut sadd = redis::cmd("SADD");
                sadd.arg(set).arg(sid);
                self.query::<i64>(&sadd).await?;
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let cmd = &redis::cmd("PING");
        self.link
            .run(
                true,
                move |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await
    }

    /// Runs a Lua script under the same deadline and concurrency cap as every store call, for
    /// the auth center's atomic operations (refresh rotation). Not retried: a script may have
    /// run even when its answer was lost.
    pub async fn run_script<T>(&self, invocation: &ScriptInvocation<'_>) -> Result<T, StoreError>
    where
        T: FromRedisValue,
    {
        self.run_script_inner(invocation, false).await
    }

    pub(super) async fn run_script_inner<T>(
        &self,
        invocation: &ScriptInvocation<'_>,
        idempotent: bool,
    ) -> Result<T, StoreError>
    where
        T: FromRedisValue,
    {
        self.link
            .run(idempotent, move |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await
    }
}

impl RedisStore {
    /// Runs a revoking script on the durable connection, then has a replica confirm it: the
    /// answer is `Ok` only once the master has it and, where replicas exist, one of them does
    /// too. Unconfirmed within the wait: [`StoreError::Unavailable`] (a 503; the client may
    /// retry, and the revocation is in effect on the master meanwhile); `on_unconfirmed`
    /// then runs on the same connection first (a rotation keeps its successor for the retry).
    /// `key` is one of the script's keys: the replica asked is its node's.
    pub(super) async fn run_revocation<T>(
        &self,
        invocation: &ScriptInvocation<'_>,
        key: &str,
        idempotent: bool,
        on_unconfirmed: Option<&ScriptInvocation<'_>>,
    ) -> Result<T, StoreError>
    where
        T: FromRedisValue,
    {
        let confirm = Confirm {
            wait: self.wait,
            always: self.sentinel,
            seen: &self.replicas_seen,
        };
        let confirm = &confirm;
        self.durable
            .run(idempotent, move |mut c| async move {
                let value = invocation.invoke_async(&mut c).await?;
                if let Err(e) = confirm.on_replica(&mut c, key).await {
                    if let Some(follow_up) = on_unconfirmed {
                        // Best effort: the error below is the answer either way.
                        let _ = follow_up.invoke_async::<()>(&mut c).await;
                    }
                    return Err(e);
                }
                Ok(value)
            })
            .await
    }
}

/// When a revocation must be confirmed by a replica, and for how long to wait.
struct Confirm<'a> {
    wait: Duration,
    /// Behind Sentinel a replica is always expected: a failover promotes one.
    always: bool,
    /// Set once any master this store wrote to had a replica: from then on a master without
    /// one (its replica's link dropped, or a master cut off from the others) is not enough.
    seen: &'a AtomicBool,
}

impl Confirm<'_> {
    /// `WAIT 1` after this connection's writes (`WAIT` covers every write the connection made
    /// before it, so it must follow the write on the same connection), when replicas are
    /// connected (`ROLE` says) or expected.
    async fn on_replica(&self, c: &mut Conn, key: &str) -> Result<(), RedisError> {
        let replicas = match c.query_at_key::<Role>(&redis::cmd("ROLE"), key).await? {
            Role::Primary { replicas, .. } => replicas.len(),
            // Not a master (a failover under way): the write itself fails READONLY there, so
            // this is only reached by a node that changed role in between.
            _ => {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "the node stopped being the master",
                )))
            }
        };
        if replicas > 0 {
            self.seen.store(true, Ordering::Relaxed);
        } else if self.always || self.seen.load(Ordering::Relaxed) {
            return Err(RedisError::from((
                ErrorKind::Client,
                "not confirmed by a replica",
                "the master has no replica connected".to_owned(),
            )));
        } else {
            return Ok(());
        }
        let wait_ms = u64::try_from(self.wait.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut wait_cmd = redis::cmd("WAIT");
        wait_cmd.arg(1).arg(wait_ms);
        let acked: i64 = c.query_at_key(&wait_cmd, key).await?;
        if acked >= 1 {
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::Client,
                "not confirmed by a replica in time",
                format!("{replicas} replica(s), none acknowledged within {wait_ms} ms"),
            )))
        }
    }
}

/// SMEMBERS, then every hash (in one pipeline on a node; one by one on a cluster, where they
/// live on other slots than the set): the live sessions, and the sids whose hash is gone (or
/// now belongs to someone else), for [`RedisStore::prune_user_set`]. Sids that are not UTF-8
/// are skipped, not pruned.
async fn list_sessions(
    c: &mut Conn,
    store: &RedisStore,
    set_key: &str,
    user_id: &str,
) -> Result<(Vec<(String, SessionRecord)>, Vec<String>), RedisError> {
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(set_key).query_async(c).await?;
    let sids: Vec<String> = members
        .into_iter()
        .filter_map(|m| String::from_utf8(m).ok())
        .collect();
    if sids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let hashes: Vec<Vec<(Vec<u8>, Vec<u8>)>> = if store.cluster {
        let mut hashes = Vec::with_capacity(sids.len());
        for sid in &sids {
            hashes.push(
                redis::cmd("HGETALL")
                    .arg(store.session_key(sid))
                    .query_async(c)
                    .await?,
            );
        }
        hashes
    } else {
        let mut pipe = redis::pipe();
        for sid in &sids {
            pipe.cmd("HGETALL").arg(store.session_key(sid));
        }
        pipe.query_async(c).await?
    };
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for (sid, fields) in sids.into_iter().zip(hashes) {
        match SessionRecord::from_fields(fields) {
            Some(record) if record.user_id == user_id => live.push((sid, record)),
            _ => gone.push(sid),
        }
    }
    Ok((live, gone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreKind;

    fn cfg(url: &str) -> config::Session {
        config::Session {
            store: StoreKind::Redis,
            redis: config::Redis::url(url),
            key_prefix: "gw:".into(),
            timeout: Duration::from_millis(200),
            max_concurrent: 4,
            cache: false,
        }
    }

    #[tokio::test]
    async fn bad_url_is_invalid() {
        let err = RedisStore::connect(&cfg("http://nope")).unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn keys_follow_the_contract() {
        let store = RedisStore::connect(&cfg("redis://127.0.0.1:1/0")).unwrap();
        assert_eq!(store.session_key("abc"), "gw:session:abc");
        assert_eq!(store.user_sessions_key("u1"), "gw:user-sessions:u1");
        assert!(!format!("{store:?}").contains("127.0.0.1"));
    }

    #[tokio::test]
    async fn store_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store = RedisStore::connect(&cfg("redis://127.0.0.1:1/0")).unwrap();
        let new = NewSession {
            sid: "s".into(),
            user_id: "u".into(),
            roles: None,
            created_at: 0,
            ip: None,
            user_agent: None,
            device_id: None,
            claims: Vec::new(),
        };
        assert_send(&store.get("s"));
        assert_send(&store.create(&new, Duration::from_secs(1)));
        assert_send(&store.delete("s"));
        assert_send(&store.list_for_user("u"));
        assert_send(&store.ping());
    }

    #[tokio::test]
    async fn unreachable_redis_answers_an_error_in_time() {
        let store = RedisStore::connect(&cfg("redis://127.0.0.1:1/0")).unwrap();
        let started = tokio::time::Instant::now();
        assert!(store.get("s").await.is_err());
        assert!(store.ping().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
