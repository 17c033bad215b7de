//! Verified-token cache: a token whose signature and claims were checked once is not checked
//! again before it expires. Keyed by the SHA-256 of the token's bytes (never a part of it, so
//! a reused signature with another payload cannot hit), bounded in size, and tied to the
//! verifier's key generation so a JWKS refresh invalidates what was verified with old keys.
//! The session check is never cached here: revocation stays immediate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::jwt::VerifiedToken;

/// Shards keep lock contention low on a multi-threaded runtime.
const SHARDS: usize = 16;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    token: Arc<VerifiedToken>,
    /// Unix seconds after which the token is expired (exp + leeway).
    valid_until: u64,
    generation: u64,
}

pub struct TokenCache {
    shards: Box<[Mutex<HashMap<TokenDigest, Entry>>]>,
    per_shard: usize,
}

impl TokenCache {
    /// `capacity` entries in all (0 disables the cache).
    pub fn new(capacity: usize) -> TokenCache {
        let per_shard = capacity.div_ceil(SHARDS);
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, d: &TokenDigest) -> &Mutex<HashMap<TokenDigest, Entry>> {
        &self.shards[d[0] as usize % SHARDS]
    }

    /// The cached verification of this token, if still valid at `now` under `generation`.
    pub fn get(&self, d: &TokenDigest, now: u64, generation: u64) -> Option<Arc<VerifiedToken>> {
        if self.per_shard == 0 {
            return None;
        }
        // A poisoned shard only means another thread panicked mid-insert; the map is still
        // a valid map, so keep using it.
        let mut shard = self.shard(d).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(d) {
            Some(e) if e.generation == generation && now <= e.valid_until => Some(e.token.clone()),
            Some(_) => {
                shard.remove(d);
                None
            }
            None => None,
        }
    }

    pub fn insert(
        &self,
        d: TokenDigest,
        token: Arc<VerifiedToken>,
        valid_until: u64,
        generation: u64,
        now: u64,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&d).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.valid_until >= now && e.generation == generation);
            if shard.len() >= self.per_shard {
                // Still full of live tokens: drop an arbitrary one (bounded memory first).
                if let Some(k) = shard.keys().next().copied() {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(
            d,
            Entry {
                token,
                valid_until,
                generation,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vt(user: &str) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            issuer: 0,
            user_id: user.into(),
            session_id: Some("s".into()),
            roles: vec![],
            expires_at: 100,
            claims: vec![],
        })
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let c = TokenCache::new(64);
        let d = digest("a.b.c");
        c.insert(d, vt("alice"), 100, 0, 10);
        assert_eq!(c.get(&d, 50, 0).unwrap().user_id, "alice");
        assert!(c.get(&d, 100, 0).is_some());
        assert!(c.get(&d, 101, 0).is_none(), "expired tokens never hit");
        assert!(c.is_empty(), "an expired entry is dropped on lookup");
    }

    #[test]
    fn a_key_refresh_invalidates() {
        let c = TokenCache::new(64);
        let d = digest("a.b.c");
        c.insert(d, vt("alice"), 100, 3, 10);
        assert!(c.get(&d, 50, 4).is_none());
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(32);
        for i in 0..1000 {
            c.insert(digest(&format!("t{i}")), vt("u"), 1000, 0, 10);
        }
        assert!(c.len() <= 32, "{}", c.len());
    }

    #[test]
    fn disabled_with_zero_capacity() {
        let c = TokenCache::new(0);
        let d = digest("x");
        c.insert(d, vt("alice"), 100, 0, 10);
        assert!(c.get(&d, 50, 0).is_none());
    }

    #[test]
    fn different_tokens_different_keys() {
        assert_ne!(digest("a.b.c"), digest("a.b.d"));
    }
}
