//! Verdict caches keyed by the SHA-256 of a token's bytes (never a part of it, so a reused
//! signature with another payload cannot hit), bounded in size, and tied to the verifier's key
//! generation so a JWKS refresh voids what was decided with old keys. Two are used: verified
//! tokens (signature and claims checked once, not again before the token expires) and recent
//! signature failures (a junk token sent again is refused without another signature check,
//! so a flood of one bad token costs what a valid cached one does). The session check is never
//! cached here: revocation stays immediate.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::jwt::VerifiedToken;

/// Shards keep lock contention low on a multi-threaded runtime.
const SHARDS: usize = 16;

pub type TokenDigest = [u8; 32];

/// The key is already a SHA-256 digest: 8 of its bytes are as good a hash as any, so the
/// maps skip SipHash (a cost on every request). Grinding tokens for colliding digests buys an
/// attacker nothing: a shard holds a few thousand entries at most.
#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length, then its bytes: keep bytes 8..16 (byte 0 picks
        // the shard, so within one shard its bits would be the same for every key).
        if let Some(chunk) = bytes.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            self.0 = u64::from_le_bytes(chunk);
        }
    }
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

type DigestMap<V> = HashMap<TokenDigest, Entry<V>, BuildHasherDefault<DigestHasher>>;

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry<V> {
    value: V,
    /// Unix seconds after which the verdict no longer holds (a token's exp + leeway).
    valid_until: u64,
    generation: u64,
}

/// Digest -> verdict `V` ([`Arc<VerifiedToken>`] by default), bounded.
pub struct TokenCache<V = Arc<VerifiedToken>> {
    shards: Box<[Mutex<DigestMap<V>>]>,
    per_shard: usize,
}

impl<V: Clone> TokenCache<V> {
    /// `capacity` entries in all (0 disables the cache).
    pub fn new(capacity: usize) -> TokenCache<V> {
        let per_shard = capacity.div_ceil(SHARDS);
        TokenCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(DigestMap::default()))
                .collect(),
            per_shard,
        }
    }

    fn shard(&self, d: &TokenDigest) -> &Mutex<DigestMap<V>> {
        &self.shards[d[0] as usize % SHARDS]
    }

    /// The cached verdict on this token, if still valid at `now` under `generation`.
    pub fn get(&self, d: &TokenDigest, now: u64, generation: u64) -> Option<V> {
        if self.per_shard == 0 {
            return None;
        }
        // A poisoned shard only means another thread panicked mid-insert; the map is still
        // a valid map, so keep using it.
        let mut shard = self.shard(d).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(d) {
            Some(e) if e.generation == generation && now <= e.valid_until => Some(e.value.clone()),
            Some(_) => {
                shard.remove(d);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, d: TokenDigest, value: V, valid_until: u64, generation: u64, now: u64) {
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
                value,
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
            headers: Default::default(),
        })
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let c: TokenCache = TokenCache::new(64);
        let d = digest("a.b.c");
        c.insert(d, vt("alice"), 100, 0, 10);
        assert_eq!(c.get(&d, 50, 0).unwrap().user_id, "alice");
        assert!(c.get(&d, 100, 0).is_some());
        assert!(c.get(&d, 101, 0).is_none(), "expired tokens never hit");
        assert!(c.is_empty(), "an expired entry is dropped on lookup");
    }

    #[test]
    fn a_key_refresh_invalidates() {
        let c: TokenCache = TokenCache::new(64);
        let d = digest("a.b.c");
        c.insert(d, vt("alice"), 100, 3, 10);
        assert!(c.get(&d, 50, 4).is_none());
    }

    #[test]
    fn bounded() {
        let c: TokenCache = TokenCache::new(32);
        for i in 0..1000 {
            c.insert(digest(&format!("t{i}")), vt("u"), 1000, 0, 10);
        }
        assert!(c.len() <= 32, "{}", c.len());
    }

    #[test]
    fn disabled_with_zero_capacity() {
        let c: TokenCache = TokenCache::new(0);
        let d = digest("x");
        c.insert(d, vt("alice"), 100, 0, 10);
        assert!(c.get(&d, 50, 0).is_none());
    }

    #[test]
    fn failures_are_remembered_until_the_keys_change() {
        use crate::auth::jwt::TokenError;
        let c: TokenCache<TokenError> = TokenCache::new(16);
        let d = digest("junk.junk.junk");
        c.insert(d, TokenError::Signature, 70, 1, 10);
        assert_eq!(c.get(&d, 20, 1), Some(TokenError::Signature));
        assert_eq!(c.get(&digest("junk.junk.junj"), 20, 1), None);
        assert_eq!(c.get(&d, 20, 2), None, "new keys may verify it");
        c.insert(d, TokenError::Signature, 70, 1, 10);
        assert_eq!(c.get(&d, 71, 1), None, "remembered for a while only");
    }

    #[test]
    fn different_tokens_different_keys() {
        assert_ne!(digest("a.b.c"), digest("a.b.d"));
    }
}
