//! The auth center's records in Redis: the Lua scripts that make a login, a refresh rotation,
//! a sign-out-everywhere, a user write and a login attempt each one atomic step, and the
//! `RedisStore` methods that run them.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Admission, Binding, RefreshOutcome, Rotation, UserRecord};
use crate::auth::session::redis::RedisStore;
use crate::auth::session::{parse_roles, ttl_millis, NewSession, StoreError};

/// Session + refresh record in one write. `KEYS[1]` session, `KEYS[2]` user set, `KEYS[3]`
/// refresh record; `ARGV[1]` TTL ms, `ARGV[2]` sid, `ARGV[3..]` session field/value pairs.
const BEGIN_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[2])
redis.call('SADD', KEYS[2], ARGV[2])
if left == -2 or (left >= 0 and left < tonumber(ARGV[1])) then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'sid', ARGV[2], 'state', 'live')
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return 1
";

/// Refresh rotation, reuse detection, binding, the use count and the grace in one step.
/// `KEYS[1]` the presented token's record, `KEYS[2]` the new one, `KEYS[3]` the presented
/// token's grace record; `ARGV[1]` key prefix, `ARGV[2]` binding (`none`/`device`/`ip`),
/// `ARGV[3]` the presented device id or address, `ARGV[4]` max uses, `ARGV[5]` fallback TTL
/// ms, `ARGV[6]` grace ms ("0": off), `ARGV[7]` the sealed successor, `ARGV[8]` the device id
/// sent. The old record keeps its expiry (the session's end), so a replay is recognised as
/// long as the session could have lived; the grace record (`next`, `next_key`, `device`)
/// expires with the grace, and a revocation deletes it.
const ROTATE_LUA: &str = r"
local rec = redis.call('HMGET', KEYS[1], 'sid', 'state')
local sid = rec[1]
if not sid then return {'unknown'} end
local skey = ARGV[1] .. 'session:' .. sid
local function revoke()
  local user = redis.call('HGET', skey, 'user_id')
  redis.call('DEL', skey)
  redis.call('DEL', KEYS[3])
  if user then redis.call('SREM', ARGV[1] .. 'user-sessions:' .. user, sid) end
end
local s = redis.call('HMGET', skey, 'user_id', 'roles', 'refresh_count', 'device_id', 'ip')
local bound = false
if ARGV[2] == 'device' then bound = s[4] elseif ARGV[2] == 'ip' then bound = s[5] end
local mismatch = bound and bound ~= '' and bound ~= ARGV[3]
local ttl = redis.call('PTTL', skey)
if ttl == -1 then ttl = tonumber(ARGV[5]) end
local has_roles = '0'
if s[2] then has_roles = '1' end
if rec[2] ~= 'live' then
  local g = redis.call('HMGET', KEYS[3], 'next', 'next_key', 'device')
  if g[1] and g[3] == ARGV[8] and s[1] and s[1] ~= '' and ttl > 0
     and redis.call('HGET', g[2], 'state') == 'live' then
    if mismatch then
      revoke()
      return {'binding', sid}
    end
    return {'again', sid, s[1], has_roles, s[2] or '', tostring(ttl), g[1]}
  end
  revoke()
  return {'reused', sid}
end
if not s[1] or s[1] == '' then
  redis.call('HSET', KEYS[1], 'state', 'used')
  return {'gone'}
end
if mismatch then
  redis.call('HSET', KEYS[1], 'state', 'used')
  revoke()
  return {'binding', sid}
end
local count = tonumber(s[3]) or 0
if count >= tonumber(ARGV[4]) then return {'exhausted'} end
if ttl <= 0 then return {'gone'} end
redis.call('HSET', KEYS[1], 'state', 'used')
redis.call('HSET', skey, 'refresh_count', tostring(count + 1))
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'sid', sid, 'state', 'live')
redis.call('PEXPIRE', KEYS[2], ttl)
if tonumber(ARGV[6]) > 0 then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'next', ARGV[7], 'next_key', KEYS[2], 'device', ARGV[8])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
return {'ok', sid, s[1], has_roles, s[2] or '', tostring(count + 1), tostring(ttl)}
";

/// `KEYS[1]` the user's set; `ARGV[1]` prefix, `ARGV[2]` user id. Deletes every session of
/// the set that belongs to the user, then the set. Returns how many sessions were deleted.
const DELETE_ALL_LUA: &str = r"
local n = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. 'session:' .. sid
  if redis.call('HGET', k, 'user_id') == ARGV[2] then n = n + redis.call('DEL', k) end
end
redis.call('DEL', KEYS[1])
return n
";

/// `KEYS[1]` user hash; `ARGV[1]` '1' to replace an existing user, `ARGV[2..]` fields.
const PUT_USER_LUA: &str = r"
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
";

/// One login attempt, check and count in one step. `KEYS` counters; `ARGV[1]` window ms,
/// `ARGV[1 + i]` the limit of `KEYS[i]`. When a counter is at its limit nothing is counted
/// and the answer is the longest ms until such a counter resets (>= 0); otherwise every
/// counter counts one more (a counter's window starts at its first count and is never
/// extended) and the answer is -1.
const ATTEMPT_LUA: &str = r"
local wait = -1
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0') or 0
  if n >= tonumber(ARGV[i + 1]) then
    local left = redis.call('PTTL', k)
    if left < 0 then
      redis.call('PEXPIRE', k, ARGV[1])
      left = tonumber(ARGV[1])
    end
    if left > wait then wait = left end
  end
end
if wait >= 0 then return wait end
for _, k in ipairs(KEYS) do
  redis.call('INCR', k)
  if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, ARGV[1]) end
end
return -1
";

/// Takes one counted attempt back from each of `KEYS` still counting (a login that
/// succeeded); the window is kept, a counter never goes below zero nor comes back to life.
const UNCOUNT_LUA: &str = r"
for _, k in ipairs(KEYS) do
  if (tonumber(redis.call('GET', k) or '0') or 0) > 0 then redis.call('DECR', k) end
end
return 1
";

/// After a rotation that a replica did not confirm: `KEYS[1]` the presented token's grace
/// record, `KEYS[2]` its successor's record; `ARGV[1]` the sealed successor, `ARGV[2]` the
/// device id sent, `ARGV[3]` ms to keep it. Written only when the rotation happened (the
/// successor is live) and no grace record exists: then the retry the 503 asked for, with the
/// same token from the same device, is answered like a replay within the grace.
const KEEP_FOR_RETRY_LUA: &str = r"
if redis.call('HGET', KEYS[2], 'state') == 'live' and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'next', ARGV[1], 'next_key', KEYS[2], 'device', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
";

/// How long a rotation answered 503 (unconfirmed) keeps its successor for the retry.
const RETRY_WINDOW: Duration = Duration::from_secs(60);

// Built once: a Script hashes its source, and EVALSHA needs that hash on every call.
static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE_LUA));
static KEEP_FOR_RETRY: LazyLock<Script> = LazyLock::new(|| Script::new(KEEP_FOR_RETRY_LUA));
/// [`ROTATE_LUA`] on a cluster: the session key is `KEYS[4]` (the token's sid, `ARGV[9]`, as
/// its tag, and it must be the record's), and the user's set, on another slot, is left to be
/// pruned when read.
static ROTATE_CLUSTER: LazyLock<Script> = LazyLock::new(|| {
    let single = "local skey = ARGV[1] .. 'session:' .. sid\n";
    let srem = "  if user then redis.call('SREM', ARGV[1] .. 'user-sessions:' .. user, sid) end\n";
    assert!(ROTATE_LUA.contains(single) && ROTATE_LUA.contains(srem));
    Script::new(
        &ROTATE_LUA
            .replace(
                single,
                "if sid ~= ARGV[9] then return {'unknown'} end\nlocal skey = KEYS[4]\n",
            )
            .replace(srem, ""),
    )
});
static DELETE_ALL: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_ALL_LUA));
static PUT_USER: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_USER_LUA));
static ATTEMPT: LazyLock<Script> = LazyLock::new(|| Script::new(ATTEMPT_LUA));
static UNCOUNT: LazyLock<Script> = LazyLock::new(|| Script::new(UNCOUNT_LUA));

impl RedisStore {
    /// `{P}refresh:{hash}`; on a cluster `{P}refresh:{<sid>}:{hash}`, in its session's slot.
    pub fn refresh_key(&self, sid: &str, hash: &str) -> String {
        if self.cluster {
            format!("{}refresh:{{{sid}}}:{hash}", self.prefix())
        } else {
            format!("{}refresh:{hash}", self.prefix())
        }
    }

    /// `{P}refresh-grace:{hash}` (on a cluster `{P}refresh-grace:{<sid>}:{hash}`): what a used
    /// token's grace needs, for the grace only.
    pub fn refresh_grace_key(&self, sid: &str, hash: &str) -> String {
        if self.cluster {
            format!("{}refresh-grace:{{{sid}}}:{hash}", self.prefix())
        } else {
            format!("{}refresh-grace:{hash}", self.prefix())
        }
    }

    /// `{P}user:{name}`.
    pub fn user_key(&self, name: &str) -> String {
        format!("{}user:{name}", self.prefix())
    }

    pub(super) async fn begin(
        &self,
        new: &NewSession,
        refresh_hash: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        new.validate(ttl)?;
        let refresh_key = self.refresh_key(&new.sid, refresh_hash);
        if self.cluster {
            return self.cluster_begin(new, &refresh_key, ttl).await;
        }
        let mut inv = BEGIN.prepare_invoke();
        inv.key(self.session_key(&new.sid))
            .key(self.user_sessions_key(&new.user_id))
            .key(refresh_key)
            .arg(ttl_millis(ttl))
            .arg(&new.sid);
        for (name, value) in new.fields() {
            inv.arg(name).arg(value);
        }
        // Idempotent: running it twice leaves the same keys.
        self.run_script_inner::<()>(&inv, true).await
    }

    pub(super) async fn rotate(&self, r: &Rotation<'_>) -> Result<RefreshOutcome, StoreError> {
        let (mode, presented) = match r.binding {
            Binding::None => ("none", ""),
            Binding::Device(d) => ("device", d),
            Binding::Ip(ip) => ("ip", ip),
        };
        // On a cluster the token must name its session (its keys' tag); one that does not
        // was never issued there.
        let sid = match (self.cluster, r.sid) {
            (true, None) => return Ok(RefreshOutcome::Unknown),
            (_, sid) => sid.unwrap_or_default(),
        };
        let script: &Script = if self.cluster {
            &ROTATE_CLUSTER
        } else {
            &ROTATE
        };
        let mut inv = script.prepare_invoke();
        let grace_ms = if r.grace.is_zero() {
            0
        } else {
            ttl_millis(r.grace)
        };
        let old_key = self.refresh_key(sid, r.old_hash);
        inv.key(&old_key)
            .key(self.refresh_key(sid, r.new_hash))
            .key(self.refresh_grace_key(sid, r.old_hash));
        if self.cluster {
            inv.key(self.session_key(sid));
        }
        inv.arg(self.prefix())
            .arg(mode)
            .arg(presented)
            .arg(r.max_uses)
            .arg(ttl_millis(r.fallback_ttl))
            .arg(grace_ms)
            .arg(r.sealed_successor)
            .arg(r.device)
            .arg(sid);
        // Never retried: the first attempt may have rotated already. A revocation (the old
        // token is spent; on reuse, the whole session goes), so a replica confirms it.
        // Unconfirmed, the answer is a 503 and the client is told to retry, but the rotation
        // stands on the master: the successor is kept (sealed, as for the grace) so that the
        // same token from the same device gets it instead of counting as reuse.
        let new_key = self.refresh_key(sid, r.new_hash);
        let grace_key = self.refresh_grace_key(sid, r.old_hash);
        let mut keep = KEEP_FOR_RETRY.prepare_invoke();
        keep.key(&grace_key)
            .key(&new_key)
            .arg(r.sealed_successor)
            .arg(r.device)
            .arg(ttl_millis(RETRY_WINDOW));
        let answer: Vec<String> = self
            .run_revocation(&inv, &old_key, false, Some(&keep))
            .await?;
        parse_rotation(&answer)
    }

    pub(super) async fn delete_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        if self.cluster {
            return self.cluster_delete_for_user(user_id).await;
        }
        let set = self.user_sessions_key(user_id);
        let mut inv = DELETE_ALL.prepare_invoke();
        inv.key(&set).arg(self.prefix()).arg(user_id);
        self.run_revocation(&inv, &set, true, None).await
    }

    pub(super) async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.user_key(name));
        let cmd = &cmd;
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self
            .link
            .run(
                true,
                move |mut c| async move { cmd.query_async(&mut c).await },
            )
            .await?;
        Ok(UserRecord::from_fields(fields))
    }

    pub(super) async fn put_user(
        &self,
        name: &str,
        user: &UserRecord,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let fields = user.fields()?;
        let mut inv = PUT_USER.prepare_invoke();
        inv.key(self.user_key(name))
            .arg(if replace { "1" } else { "0" });
        for (n, v) in fields {
            inv.arg(n).arg(v);
        }
        // Not retried: a lost answer to a first write would read as "exists".
        self.run_script::<i64>(&inv).await.map(|n| n == 1)
    }

    pub(super) async fn count_attempt(
        &self,
        counters: &[(String, u64)],
        window: Duration,
    ) -> Result<Admission, StoreError> {
        if counters.is_empty() {
            return Ok(Admission::Counted);
        }
        let wait = if self.cluster {
            // Each counter is on a slot of its own: each is checked and counted atomically,
            // and one at its limit takes back the ones counted before it, so no counter ever
            // lets more than its limit through and a refused attempt counts nowhere.
            let mut counted = Vec::new();
            let mut wait = -1;
            for counter in counters {
                wait = self.attempt(std::slice::from_ref(counter), window).await?;
                if wait >= 0 {
                    break;
                }
                counted.push(counter.0.clone());
            }
            if wait >= 0 {
                self.uncount_attempt(&counted).await?;
            }
            wait
        } else {
            self.attempt(counters, window).await?
        };
        Ok(match u64::try_from(wait) {
            Ok(ms) => Admission::Locked {
                resets_in: Duration::from_millis(ms),
            },
            Err(_) => Admission::Counted,
        })
    }

    /// [`ATTEMPT_LUA`] over `counters`: -1 when counted, else ms until one resets.
    async fn attempt(
        &self,
        counters: &[(String, u64)],
        window: Duration,
    ) -> Result<i64, StoreError> {
        let mut inv = ATTEMPT.prepare_invoke();
        for (name, _) in counters {
            inv.key(format!("{}{name}", self.prefix()));
        }
        inv.arg(ttl_millis(window));
        for (_, limit) in counters {
            inv.arg(*limit);
        }
        self.run_script(&inv).await
    }

    pub(super) async fn uncount_attempt(&self, names: &[String]) -> Result<(), StoreError> {
        // On a cluster, each counter on its own slot.
        let groups: Vec<&[String]> = if self.cluster {
            names.chunks(1).collect()
        } else {
            vec![names]
        };
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            let mut inv = UNCOUNT.prepare_invoke();
            for name in group {
                inv.key(format!("{}{name}", self.prefix()));
            }
            // Not retried: taking back twice would forgive a failure.
            self.run_script::<i64>(&inv).await?;
        }
        Ok(())
    }
}

/// Reads the rotation script's answer.
pub(super) fn parse_rotation(answer: &[String]) -> Result<RefreshOutcome, StoreError> {
    let bad = || StoreError::Unavailable("unexpected answer from the refresh script".into());
    let millis = |s: &str| s.parse().map(Duration::from_millis).map_err(|_| bad());
    let sid = || answer.get(1).cloned().ok_or_else(bad);
    match answer.first().map(String::as_str) {
        Some("unknown") => Ok(RefreshOutcome::Unknown),
        Some("reused") => Ok(RefreshOutcome::Reused { sid: sid()? }),
        Some("gone") => Ok(RefreshOutcome::SessionGone),
        Some("exhausted") => Ok(RefreshOutcome::Exhausted),
        Some("binding") => Ok(RefreshOutcome::BindingMismatch { sid: sid()? }),
        Some("ok") if answer.len() == 7 => Ok(RefreshOutcome::Rotated {
            sid: answer[1].clone(),
            user_id: answer[2].clone(),
            roles: (answer[3] == "1").then(|| parse_roles(&answer[4])),
            refresh_count: answer[5].parse().map_err(|_| bad())?,
            remaining: millis(&answer[6])?,
        }),
        Some("again") if answer.len() == 7 => Ok(RefreshOutcome::Again {
            sid: answer[1].clone(),
            user_id: answer[2].clone(),
            roles: (answer[3] == "1").then(|| parse_roles(&answer[4])),
            remaining: millis(&answer[5])?,
            sealed: answer[6].clone(),
        }),
        _ => Err(bad()),
    }
}
