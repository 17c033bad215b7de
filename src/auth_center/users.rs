//! Passwords: argon2id hashing and checking, off the async threads and bounded, so a burst of
//! logins cannot take every core or all memory; the username rules (names compared
//! NFKC-casefolded, so `BOB`, `bob` and `ｂｏｂ` are one user); and generated user ids. Used by
//! the login and register endpoints and by `gateway user add`.
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

/// The name a user is known by: `name` NFKC-casefolded (Unicode's compatibility caseless
/// match, D146: NFD, case fold, NFKC, case fold, NFKC), so every spelling that differs only
/// in case or width (`BOB`, `Bob`, fullwidth `ＢＯＢ`) is one name. `None` unless the folded
/// name is a [`valid_username`]. The `{P}user:{name}` key, the uniqueness check and the
/// username's login counter all use this form.
pub fn fold_username(name: &str) -> Option<String> {
    if name.len() > MAX_PASSWORD_BYTES {
        return None; // nothing that long folds to 64 bytes; spare the work
    }
    let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc();
    let fold = icu_casemap::CaseMapperBorrowed::new();
    let nfd = icu_normalizer::DecomposingNormalizerBorrowed::new_nfd().normalize(name);
    let once = nfkc.normalize(&fold.fold_string(&nfd)).into_owned();
    let folded = nfkc.normalize(&fold.fold_string(&once)).into_owned();
    valid_username(&folded).then_some(folded)
}

/// A new user's id: a random (version 4) UUID, never derived from the username, so nobody can
/// choose the `X-User-Id` their account gets (a name equal to a service's subject must not
/// become that subject).
pub fn new_user_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A username: 1 to 64 bytes of ASCII letters, digits and `.`, `_`, `-`, `@`. Anything else
/// could not name a user (and is never used in a Redis key). Checked on the folded name.
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

/// Password checks waiting for a core, per core, before more are refused with 503 (about a
/// second of argon2 at the documented parameters).
pub const HASH_QUEUE_PER_CORE: usize = 16;

/// Runs argon2 on the blocking pool, at most one run per core at a time (each holds 19 MiB),
/// with at most [`HASH_QUEUE_PER_CORE`] more per core waiting: without the first bound a
/// flood of logins would start hundreds of blocking threads, without the second it would
/// queue without end (each waiter holding its request), answers arriving after every client
/// gave up. Past both, 503 `overloaded` with `Retry-After`.
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Runs and waiters together: `cores * (1 + HASH_QUEUE_PER_CORE)`.
    admitted: Arc<Semaphore>,
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
            admitted: Arc::new(Semaphore::new(cores * (1 + HASH_QUEUE_PER_CORE))),
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
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| GatewayError::Overloaded)?;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| GatewayError::Internal("password hasher closed".into()))?;
        // The permits go with the run: a client that hangs up does not free a core that
        // argon2 is still using.
        tokio::task::spawn_blocking(move || {
            let _held = (admitted, permit);
            f()
        })
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
    }

    #[test]
    fn names_fold_to_one_spelling() {
        for same in ["bob", "BOB", "Bob", "ｂｏｂ", "ＢＯＢ"] {
            assert_eq!(fold_username(same).as_deref(), Some("bob"), "{same:?}");
        }
        // Compatibility and case folding together: the "fi" ligature, the Kelvin sign,
        // a long s, a sharp s.
        assert_eq!(fold_username("\u{FB01}x").as_deref(), Some("fix"));
        assert_eq!(fold_username("\u{212A}im").as_deref(), Some("kim"));
        assert_eq!(fold_username("\u{017F}am").as_deref(), Some("sam"));
        assert_eq!(fold_username("Stra\u{DF}e").as_deref(), Some("strasse"));
        assert_eq!(
            fold_username("Payments-Svc@Example.COM").as_deref(),
            Some("payments-svc@example.com")
        );
        for bad in ["", "a b", "ä", "a:b", "bob\u{0301}", &"a".repeat(65)] {
            assert_eq!(fold_username(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_are_random_uuids() {
        let a = new_user_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_user_id());
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
