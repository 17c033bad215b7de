//! `[admin]`: the bearer token that guards the admin listener's session endpoints. The token
//! is held so that it cannot leak by accident (no `Debug` of its bytes, no `PartialEq`) and can
//! only be compared in constant time.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The validated `[admin]` table.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The environment variable read first (named in messages).
    pub token_env: String,
    /// Read when the variable is unset (resolved path).
    pub token_file: Option<PathBuf>,
    /// `None` only when `token_file` does not exist yet and `tls.self_signed_if_missing` will
    /// write it on start; until then no request is accepted.
    pub token: Option<AdminToken>,
}

/// A bearer token for the admin listener: at least [`AdminToken::MIN_BYTES`] bytes of visible
/// ASCII (it travels in an `Authorization` header).
#[derive(Clone)]
pub struct AdminToken(Arc<[u8]>);

impl AdminToken {
    /// RFC 7518 section 3.2's floor for an HMAC key, applied to this shared secret too.
    pub const MIN_BYTES: usize = 32;

    pub fn new(bytes: &[u8]) -> Result<AdminToken, String> {
        if bytes.len() < Self::MIN_BYTES {
            return Err(format!(
                "the admin token has {} bytes; at least {} are required (for example `openssl rand -base64 32`)",
                bytes.len(),
                Self::MIN_BYTES
            ));
        }
        if !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the admin token must be visible ASCII without spaces (it is sent in an Authorization header)"
                    .to_owned(),
            );
        }
        Ok(AdminToken(Arc::from(bytes)))
    }

    /// Whether `presented` is this token. Both sides are hashed first, so the comparison
    /// takes the same time whatever the presented length or the first differing byte.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let ours = Sha256::digest(&self.0);
        let theirs = Sha256::digest(presented);
        ours.as_slice().ct_eq(theirs.as_slice()).into()
    }

    /// The token itself, for a client that must send it (`gateway token`).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_unprintable_tokens_are_refused() {
        assert!(AdminToken::new(&[b'a'; 31]).is_err());
        assert!(AdminToken::new(&[b'a'; 32]).is_ok());
        let mut spaced = vec![b'a'; 40];
        spaced[10] = b' ';
        assert!(AdminToken::new(&spaced).is_err());
        assert!(AdminToken::new("é".repeat(20).as_bytes()).is_err());
    }

    #[test]
    fn matches_only_the_same_bytes_and_never_prints_them() {
        let t = AdminToken::new(b"0123456789abcdef0123456789abcdef").unwrap();
        assert!(t.matches(b"0123456789abcdef0123456789abcdef"));
        assert!(!t.matches(b"0123456789abcdef0123456789abcdeF"));
        assert!(!t.matches(b"0123456789abcdef0123456789abcdef0"));
        assert!(!t.matches(b""));
        assert!(!format!("{t:?}").contains("0123"));
    }
}
