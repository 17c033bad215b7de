//! Passwords: argon2id hashing and checking, off the async threads and bounded, so a burst of
//! logins cannot take every core or all memory; and the username rules. Used by the login and
//! register endpoints and by `gateway user add`.
//!
//! Parameters (the OWASP minimum for argon2id, and the `argon2` crate's default): m = 19 MiB,
//! t = 2, p = 1, 16-byte random salt, 32-byte output. A stored hash with other parameters
//! still verifies with its own (they are in the PHC string).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::GatewayError;

/// Memory cost in KiB (19 MiB).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ARGON2_T_COST: u32 = 2;
/// Lanes.
pub const ARGON2_P_COST: u32 = 1;
/// Longest password accepted (bytes); longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password `register` and `user add` accept (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest username (bytes).
pub const MAX_USERNAME_BYTES: usize = 64;

fn argon2() -> Result<Argon2<'static>, String> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). Blocking: about
/// one argon2 run of CPU and 19 MiB of memory.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let salt: [u8; 16] = rand::random();
    argon2()?
        .hash_password_with_salt(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc`; a hash that does not parse never matches.
/// Blocking, like [`hash_password`].
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    match argon2() {
        Ok(a) => a.verify_password(password, phc).is_ok(),
        Err(_) => false,
    }
}

/// A username: 1 to 64 bytes of ASCII letters, digits and `.`, `_`, `-`, `@`. Anything else
/// could not name a user (and is never used in a Redis key).
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// A password `register` and `user add` accept.
pub fn acceptable_password(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS && password.len() <= MAX_PASSWORD_BYTES
}

/// Runs argon2 on the blocking pool, at most one run per core at a time (each holds 19 MiB):
/// without the bound a flood of logins would queue hundreds of blocking threads.
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password with the same parameters: unknown users are checked
    /// against it so they cost (and take) the same as a wrong password.
    dummy: Arc<str>,
}

impl Hasher {
    pub async fn new() -> Result<Hasher, String> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy = tokio::task::spawn_blocking(|| {
            let random: [u8; 32] = rand::random();
            hash_password(&random)
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(cores)),
            dummy: dummy.into(),
        })
    }

    /// Checks `password` against `phc`, or against the dummy hash when there is no user, so
    /// both cases take one argon2 run. `true` only for a real hash that matches.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, GatewayError> {
        let real = phc.is_some();
        let phc: Arc<str> = phc.map_or_else(|| self.dummy.clone(), Into::into);
        let matched = self
            .blocking(move || verify_password(password.as_bytes(), &phc))
            .await?;
        Ok(real && matched)
    }

    /// Hashes `password` for a new user.
    pub async fn hash(&self, password: String) -> Result<String, GatewayError> {
        self.blocking(move || hash_password(password.as_bytes()))
            .await?
            .map_err(GatewayError::Internal)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GatewayError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| GatewayError::Internal("password hasher closed".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| GatewayError::Internal(format!("password hashing task: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_with_the_documented_parameters() {
        let h = hash_password(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(b"correct horse", &h));
        assert!(!verify_password(b"wrong", &h));
        assert!(!verify_password(b"x", "not a hash"));
        assert_ne!(h, hash_password(b"correct horse").unwrap(), "salted");
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b-c_d@example.com", "7"] {
            assert!(valid_username(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "a b", "a:b", "ä", "a\n", long.as_str()] {
            assert!(!valid_username(bad), "{bad:?}");
        }
        assert!(acceptable_password("12345678"));
        assert!(!acceptable_password("1234567"));
    }

    #[tokio::test]
    async fn unknown_users_never_match() {
        let h = Hasher::new().await.unwrap();
        let real = hash_password(b"pw-pw-pw").unwrap();
        assert!(h.verify("pw-pw-pw".into(), Some(real)).await.unwrap());
        assert!(!h.verify("pw-pw-pw".into(), None).await.unwrap());
    }
}
