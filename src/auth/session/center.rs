//! What the auth center keeps in the session store beside the sessions themselves
//! (docs/contract.md, "Session keys in Redis"): refresh-token records, user records and login-attempt counters,
//! and the atomic operations everything rests on: refresh rotation, user creation, and
//! counting a login attempt before its password is checked.
//!
//! In Redis every operation that reads and then writes is one Lua script, so two gateways
//! (or two requests on one) can never both pass the same check; the memory store does the
//! same under its mutex (`memory_center.rs`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::redis::RedisStore;
use super::{parse_roles, ttl_millis, NewSession, SessionStore, StoreError};

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

// Built once: a Script hashes its source, and EVALSHA needs that hash on every call.
static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(BEGIN_LUA));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE_LUA));
static DELETE_ALL: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_ALL_LUA));
static PUT_USER: LazyLock<Script> = LazyLock::new(|| Script::new(PUT_USER_LUA));
static ATTEMPT: LazyLock<Script> = LazyLock::new(|| Script::new(ATTEMPT_LUA));
static UNCOUNT: LazyLock<Script> = LazyLock::new(|| Script::new(UNCOUNT_LUA));

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

impl RedisStore {
    /// `{P}refresh:{hash}`.
    pub fn refresh_key(&self, hash: &str) -> String {
        format!("{}refresh:{hash}", self.prefix())
    }

    /// `{P}refresh-grace:{hash}`: what a used token's grace needs, for the grace only.
    pub fn refresh_grace_key(&self, hash: &str) -> String {
        format!("{}refresh-grace:{hash}", self.prefix())
    }

    /// `{P}user:{name}`.
    pub fn user_key(&self, name: &str) -> String {
        format!("{}user:{name}", self.prefix())
    }

    async fn begin(
        &self,
        new: &NewSession,
        refresh_hash: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        new.validate(ttl)?;
        let mut inv = BEGIN.prepare_invoke();
        inv.key(self.session_key(&new.sid))
            .key(self.user_sessions_key(&new.user_id))
            .key(self.refresh_key(refresh_hash))
            .arg(ttl_millis(ttl))
            .arg(&new.sid);
        for (name, value) in new.fields() {
            inv.arg(name).arg(value);
        }
        // Idempotent: running it twice leaves the same keys.
        self.run_script_inner::<()>(&inv, true).await
    }

    async fn rotate(&self, r: &Rotation<'_>) -> Result<RefreshOutcome, StoreError> {
        let (mode, presented) = match r.binding {
            Binding::None => ("none", ""),
            Binding::Device(d) => ("device", d),
            Binding::Ip(ip) => ("ip", ip),
        };
        let mut inv = ROTATE.prepare_invoke();
        let grace_ms = if r.grace.is_zero() {
            0
        } else {
            ttl_millis(r.grace)
        };
        inv.key(self.refresh_key(r.old_hash))
            .key(self.refresh_key(r.new_hash))
            .key(self.refresh_grace_key(r.old_hash))
            .arg(self.prefix())
            .arg(mode)
            .arg(presented)
            .arg(r.max_uses)
            .arg(ttl_millis(r.fallback_ttl))
            .arg(grace_ms)
            .arg(r.sealed_successor)
            .arg(r.device);
        // Never retried: the first attempt may have rotated already.
        let answer: Vec<String> = self.run_script(&inv).await?;
        parse_rotation(&answer)
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut inv = DELETE_ALL.prepare_invoke();
        inv.key(self.user_sessions_key(user_id))
            .arg(self.prefix())
            .arg(user_id);
        self.run_script_inner(&inv, true).await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
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

    async fn put_user(
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

    async fn count_attempt(
        &self,
        counters: &[(String, u64)],
        window: Duration,
    ) -> Result<Admission, StoreError> {
        if counters.is_empty() {
            return Ok(Admission::Counted);
        }
        let mut inv = ATTEMPT.prepare_invoke();
        for (name, _) in counters {
            inv.key(format!("{}{name}", self.prefix()));
        }
        inv.arg(ttl_millis(window));
        for (_, limit) in counters {
            inv.arg(*limit);
        }
        let wait: i64 = self.run_script(&inv).await?;
        Ok(match u64::try_from(wait) {
            Ok(ms) => Admission::Locked {
                resets_in: Duration::from_millis(ms),
            },
            Err(_) => Admission::Counted,
        })
    }

    async fn uncount_attempt(&self, names: &[String]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut inv = UNCOUNT.prepare_invoke();
        for name in names {
            inv.key(format!("{}{name}", self.prefix()));
        }
        // Not retried: taking back twice would forgive a failure.
        self.run_script::<i64>(&inv).await.map(|_| ())
    }
}

/// Reads the rotation script's answer.
fn parse_rotation(answer: &[String]) -> Result<RefreshOutcome, StoreError> {
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

#[cfg(test)]
mod tests {
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
