//! Tokens the auth center hands out: opaque refresh tokens (their session's id, then 32 random
//! bytes, base64url; only their SHA-256 is stored), session ids, generated device ids, access tokens minted with the
//! configured key, and the answer that carries a pair (`Cache-Control: no-store`, cookies when
//! enabled). Also the sealing of a successor refresh token for the refresh grace.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderValue, PRAGMA, SET_COOKIE};
use http::{Response, StatusCode};
use sha2::{Digest, Sha256};

use super::AuthCenter;
use crate::auth::mint::MintClaims;
use crate::error::GatewayError;
use crate::http::body::Body;

/// Longest refresh token looked at; ours are 43 characters.
const MAX_REFRESH_TOKEN: usize = 128;

/// Characters of the random part of a refresh token (32 bytes, base64url).
const RANDOM_PART: usize = 43;
/// Characters of one of our session ids (16 bytes, base64url).
const SESSION_ID: usize = 22;

/// A new refresh token of session `sid` and the hash it is stored under: the session id (when
/// it is one of ours) followed by 32 random bytes. The id is not secret (access tokens carry
/// it too); it lets a cluster store the token in its session's slot. Only the random part
/// makes the token unguessable, and the whole token is hashed.
pub(super) fn new_refresh_token(sid: Option<&str>) -> (String, String) {
    let prefix = sid.filter(|s| is_session_id(s)).unwrap_or("");
    let token = format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let hash = refresh_hash(&token);
    (token, hash)
}

/// The session id a refresh token names, if it names one (tokens issued before ids were
/// part of them do not).
pub(super) fn refresh_sid(token: &str) -> Option<&str> {
    (token.len() == SESSION_ID + RANDOM_PART)
        .then(|| token.get(..SESSION_ID))
        .flatten()
        .filter(|s| is_session_id(s))
}

fn is_session_id(s: &str) -> bool {
    s.len() == SESSION_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The random part of a refresh token (all of a token without a session id).
fn random_part(token: &str) -> &str {
    token
        .get(token.len().saturating_sub(RANDOM_PART)..)
        .unwrap_or(token)
}

/// The store key part for a refresh token: lower-case hex SHA-256. Tokens are looked up by
/// this hash, never compared byte by byte, so no constant-time comparison is needed: timing
/// can at most reveal a hash prefix, which does not help to forge a token.
pub(super) fn refresh_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Whether `token` could be one of ours (base64url, bounded), so junk never reaches the store.
pub(super) fn plausible_refresh_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_REFRESH_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Seals `successor` (one of our refresh tokens) for the store, under a key derived from the
/// presented token `old`: the store keeps only `old`'s SHA-256, never `old`, so what it holds
/// is useless without the token it was rotated from. The key is used once (each token rotates
/// once), so XOR with it is a one-time pad. `None` for a token that is not 32 bytes.
pub(super) fn seal(old: &str, successor: &str) -> Option<String> {
    // The session id part is the same for the whole chain: only the random part is sealed.
    let plain = URL_SAFE_NO_PAD.decode(random_part(successor)).ok()?;
    let key = seal_key(old);
    if plain.len() != key.len() {
        return None;
    }
    let sealed: Vec<u8> = plain.iter().zip(key.iter()).map(|(p, k)| p ^ k).collect();
    Some(URL_SAFE_NO_PAD.encode(sealed))
}

/// The successor sealed by [`seal`], given the same presented token.
pub(super) fn unseal(old: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let key = seal_key(old);
    if bytes.len() != key.len() {
        return None;
    }
    let plain: Vec<u8> = bytes.iter().zip(key.iter()).map(|(b, k)| b ^ k).collect();
    let prefix = refresh_sid(old).unwrap_or("");
    Some(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(plain)))
}

/// A key of its own domain, so it is never the hash the store keys the token by.
fn seal_key(old: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gateway refresh grace seal v1\0");
    h.update(old.as_bytes());
    h.finalize().into()
}

/// A device id for a login that brought none (with `bind_refresh = "device"`): 16 random
/// bytes (128 bits), base64url, 22 characters.
pub(super) fn new_device_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// A new session id: 16 random bytes, base64url.
pub(super) fn new_session_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

impl AuthCenter {
    /// Signs an access token for the session, with the `[jwt]` claim names.
    pub(super) fn mint(
        &self,
        user_id: &str,
        sid: &str,
        roles: &[String],
    ) -> Result<String, GatewayError> {
        let jwt = &self.jwt;
        let claims = MintClaims {
            issuer: &jwt.issuer,
            audience: &jwt.audience,
            user_id_claim: &jwt.user_id_claim,
            user_id,
            session_claim: &jwt.session_claim,
            session_id: sid,
            roles_claim: &jwt.roles_claim,
            roles,
            ttl: self.cfg.access_ttl,
        };
        self.signer
            .mint(&claims)
            .map_err(|e| GatewayError::Internal(format!("mint: {e}")))
    }

    /// 200 with the pair, the session id and the cookies; `refresh_left` is how long the
    /// session (and so the refresh token) has left. `device` (at login): the session's device
    /// id, given back as `device_id` and, with cookies on, in the device cookie.
    pub(super) fn pair_answer(
        &self,
        access: &str,
        refresh: &str,
        sid: &str,
        refresh_left: Duration,
        device: Option<&str>,
    ) -> Response<Body> {
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.cfg.access_ttl.as_secs(),
            "refresh_token": refresh,
            "session_id": sid,
        });
        if let Some(d) = device {
            body["device_id"] = d.into();
        }
        let mut resp = super::json(StatusCode::OK, &body);
        let h = resp.headers_mut();
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        for c in self.pair_cookies(access, refresh, refresh_left, device) {
            h.append(SET_COOKIE, c);
        }
        resp
    }

    /// The cookies of a new pair (none with cookies off), the device cookie included.
    pub(super) fn pair_cookies(
        &self,
        access: &str,
        refresh: &str,
        refresh_left: Duration,
        device: Option<&str>,
    ) -> Vec<HeaderValue> {
        let mut out = self
            .cookies
            .issue(access, self.cfg.access_ttl, refresh, refresh_left);
        out.extend(device.and_then(|d| self.cookies.device(d, refresh_left)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (t1, h1) = new_refresh_token(None);
        let (t2, _) = new_refresh_token(None);
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43);
        assert_eq!(refresh_sid(&t1), None);
        assert!(plausible_refresh_token(&t1));
        assert_eq!(h1, refresh_hash(&t1));
        assert_eq!(h1.len(), 64);
        assert_eq!(
            refresh_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn implausible_tokens() {
        for bad in ["", "a b", "a.b", "ä", &"a".repeat(129)] {
            assert!(!plausible_refresh_token(bad), "{bad:?}");
        }
        assert_eq!(new_session_id().len(), 22);
    }

    #[test]
    fn device_ids_are_long_random_and_url_safe() {
        let (a, b) = (new_device_id(), new_device_id());
        assert_ne!(a, b);
        assert!(a.len() >= 16);
        assert!(plausible_refresh_token(&a), "URL-safe alphabet");
    }

    #[test]
    fn refresh_tokens_name_their_session() {
        let sid = new_session_id();
        let (t, h) = new_refresh_token(Some(&sid));
        assert_eq!(t.len(), 22 + 43);
        assert!(t.starts_with(&sid));
        assert!(plausible_refresh_token(&t));
        assert_eq!(refresh_sid(&t), Some(sid.as_str()));
        assert_eq!(h, refresh_hash(&t), "the whole token is hashed");
        // An id that is not one of ours is not put in a token.
        let (t, _) = new_refresh_token(Some("ext-session-1"));
        assert_eq!(t.len(), 43);
        assert_eq!(refresh_sid(&"x".repeat(64)), None);
        assert_eq!(
            refresh_sid(&format!("{}!{}", "a".repeat(21), "b".repeat(43))),
            None
        );
    }

    #[test]
    fn a_sealed_successor_opens_only_with_its_predecessor() {
        let sid = new_session_id();
        for prefix in [None, Some(sid.as_str())] {
            let (old, _) = new_refresh_token(prefix);
            let (next, _) = new_refresh_token(prefix);
            let sealed = seal(&old, &next).unwrap();
            assert_ne!(sealed, next);
            assert!(!sealed.contains(&next[next.len() - 43..]));
            assert_eq!(unseal(&old, &sealed).as_deref(), Some(next.as_str()));
        }
        let (old, old_hash) = new_refresh_token(None);
        let (next, _) = new_refresh_token(None);
        let sealed = seal(&old, &next).unwrap();
        let (other, _) = new_refresh_token(None);
        assert_ne!(unseal(&other, &sealed).as_deref(), Some(next.as_str()));
        // What the store keys the old token by does not open it either.
        assert_ne!(unseal(&old_hash, &sealed).as_deref(), Some(next.as_str()));
        assert!(seal(&old, "short").is_none());
        assert!(unseal(&old, "!!").is_none());
    }
}
