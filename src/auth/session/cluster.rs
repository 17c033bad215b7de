//! The session store on a Redis Cluster: the same records under hash-tagged keys, and the
//! operations rebuilt so that no script touches two slots (README, "Cluster key layout").
//!
//! A session's keys share its id's tag: `{P}session:{<sid>}` and its refresh records
//! `{P}refresh:{<sid>}:<hash>`, so a rotation (refresh records and session) is still one
//! atomic script, and sessions spread over the masters by id. A user's set
//! `{P}user-sessions:{<user_id>}` has the user's tag, so it lives on another slot: the id is
//! added before the session is written and again after, and a prune (a sid whose hash is gone
//! is dropped when the set is read) puts back any id whose session exists by then, so a live
//! session is never left out of its set and "sign out everywhere" finds every one; that one
//! deletes each session with a script of its own.

use std::time::Duration;

use redis::Script;
use std::sync::LazyLock;

use super::redis::RedisStore;
use super::{ttl_millis, NewSession, StoreError};

/// `KEYS[1]` a user's set; `ARGV[1]` TTL ms, `ARGV[2]` sid. Adds the sid and extends the
/// set's expiry to at least the session's end (a set without expiry keeps none).
const USER_SET_LUA: &str = r"
local left = redis.call('PTTL', KEYS[1])
redis.call('SADD', KEYS[1], ARGV[2])
if left == -2 or (left >= 0 and left < tonumber(ARGV[1])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
";

/// `KEYS[1]` session hash; `ARGV[1]` TTL ms, `ARGV[2..]` field/value pairs.
const SESSION_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// `KEYS[1]` session hash. Deletes it; answers `{existed, user_id or ''}`.
const DELETE_LUA: &str = r"
local user = redis.call('HGET', KEYS[1], 'user_id')
return {redis.call('DEL', KEYS[1]), user or ''}
";

/// `KEYS[1]` session hash; `ARGV[1]` user id. Deletes it if it is that user's.
const DELETE_OWNED_LUA: &str = r"
if redis.call('HGET', KEYS[1], 'user_id') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Session and its first refresh record: `KEYS[1]` session, `KEYS[2]` refresh record;
/// `ARGV[1]` TTL ms, `ARGV[2]` sid, `ARGV[3..]` session fields.
const BEGIN_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'sid', ARGV[2], 'state', 'live')
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
";

static USER_SET: LazyLock<Script> = LazyLock::new(|| Script::new(USER_SET_LUA));
static SESSION: LazyLock<Script> = LazyLock::new(|| Script::new(SESSION_LUA));
static SESSION_IF_ABSENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n{SESSION_LUA}"
    ))
});
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_LUA));
static DELETE_OWNED: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_OWNED_LUA));
static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));

/// `{<s>}`: a hash tag, so every key built with the same `s` lands in one slot.
pub(super) fn tag(s: &str) -> String {
    format!("{{{s}}}")
}

impl RedisStore {
    /// Adds `sid` to its user's set (first: see the module's note).
    async fn add_to_user_set(&self, new: &NewSession, ttl: Duration) -> Result<(), StoreError> {
        let mut inv = USER_SET.prepare_invoke();
        inv.key(self.user_sessions_key(&new.user_id))
            .arg(ttl_millis(ttl))
            .arg(&new.sid);
        self.run_script_inner::<()>(&inv, true).await
    }

    /// `create` / `create_if_absent` on a cluster: `Ok(false)` when `if_absent` found one.
    pub(super) async fn cluster_create(
        &self,
        new: &NewSession,
        ttl: Duration,
        if_absent: bool,
    ) -> Result<bool, StoreError> {
        self.add_to_user_set(new, ttl).await?;
        let script: &Script = if if_absent {
            &SESSION_IF_ABSENT
        } else {
            &SESSION
        };
        let mut inv = script.prepare_invoke();
        inv.key(self.session_key(&new.sid)).arg(ttl_millis(ttl));
        for (name, value) in new.fields() {
            inv.arg(name).arg(value);
        }
        // As on one node: a plain create is idempotent, a create-if-absent is not retried.
        let written = self.run_script_inner::<i64>(&inv, !if_absent).await? == 1;
        // Added again: a reader that pruned the id between the first add and the write (the
        // session did not exist yet) must not leave it out of the set.
        self.add_to_user_set(new, ttl).await?;
        Ok(written)
    }

    /// `delete` on a cluster: the hash in one confirmed script, then the sid out of its
    /// user's set (best effort: the set is pruned when read anyway).
    pub(super) async fn cluster_delete(&self, sid: &str) -> Result<bool, StoreError> {
        let key = self.session_key(sid);
        let mut inv = DELETE.prepare_invoke();
        inv.key(&key);
        let (existed, user): (i64, String) = self.run_revocation(&inv, &key, true, None).await?;
        if !user.is_empty() {
            let mut cmd = redis::cmd("SREM");
            cmd.arg(self.user_sessions_key(&user)).arg(sid);
            if let Err(e) = self.query::<i64>(&cmd).await {
                tracing::debug!(error = %e, "session store: SREM after a delete failed; the set is pruned when read");
            }
        }
        Ok(existed > 0)
    }

    /// `delete_for_user` on a cluster: every session of the user's set that is the user's,
    /// each deleted (and confirmed) by a script on its own slot, then the set.
    pub(super) async fn cluster_delete_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let set = self.user_sessions_key(user_id);
        let mut smembers = redis::cmd("SMEMBERS");
        smembers.arg(&set);
        let sids: Vec<String> = self.query(&smembers).await?;
        let mut deleted = 0;
        let mut first_error = None;
        let mut handled = Vec::with_capacity(sids.len());
        // Every session is tried, even after one fails (an unconfirmed one is 503, but in
        // effect): the first error is the answer.
        for sid in &sids {
            let key = self.session_key(sid);
            let mut inv = DELETE_OWNED.prepare_invoke();
            inv.key(&key).arg(user_id);
            match self.run_revocation::<u64>(&inv, &key, true, None).await {
                Ok(n) => {
                    deleted += n;
                    handled.push(sid.clone());
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Only the ids handled leave the set (one added meanwhile by a login stays), and an
        // id whose session appeared meanwhile is put back.
        self.prune_user_set(&set, user_id, &handled).await?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// `begin` (a login) on a cluster: the user's set, session and refresh record, the set again.
    pub(super) async fn cluster_begin(
        &self,
        new: &NewSession,
        refresh_key: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.add_to_user_set(new, ttl).await?;
        let mut inv = BEGIN.prepare_invoke();
        inv.key(self.session_key(&new.sid))
            .key(refresh_key)
            .arg(ttl_millis(ttl))
            .arg(&new.sid);
        for (name, value) in new.fields() {
            inv.arg(name).arg(value);
        }
        self.run_script_inner::<()>(&inv, true).await?;
        // Added again: see `cluster_create`.
        self.add_to_user_set(new, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_what_redis_hashes() {
        assert_eq!(tag("s1"), "{s1}");
        // Redis hashes only what is between the first '{' and the next '}'.
        assert_eq!(
            redis::cluster_routing::Route::with_key(
                "gw:session:{s1}",
                redis::cluster_routing::SlotAddr::Master
            ),
            redis::cluster_routing::Route::with_key(
                "gw:refresh:{s1}:abc",
                redis::cluster_routing::SlotAddr::Master
            )
        );
    }
}
