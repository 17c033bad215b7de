//! What the OpenID login keeps in the session store (docs/contract.md section 9): a login's
//! state (`state`, `nonce`, PKCE verifier, `return_to`) under `{P}oidc-login:{<id>}`, taken
//! once and gone; the back-channel logout tokens seen (`{P}oidc-jti:{<name>:<jti>}`, so a
//! replay revokes nothing twice and is refused); and which gateway sessions a provider session
//! begat (`{P}oidc-sid:{<name>:<sid>}`, a set), so a logout naming that provider session can
//! end them. Each key is one hash slot (braced), so a cluster serves them like one node.

use std::time::Duration;

use crate::auth::session::{SessionStore, StoreError};

/// The three kinds of key.
#[derive(Debug, Clone, Copy)]
pub enum OidcKey {
    Login,
    Jti,
    ProviderSession,
}

impl OidcKey {
    fn key(self, prefix: &str, id: &str) -> String {
        let kind = match self {
            OidcKey::Login => "oidc-login",
            OidcKey::Jti => "oidc-jti",
            OidcKey::ProviderSession => "oidc-sid",
        };
        // `{...}` is the cluster hash tag; one node ignores the braces.
        format!("{prefix}{kind}:{{{id}}}")
    }
}

impl SessionStore {
    /// Stores a login's state for `ttl`.
    pub async fn oidc_put(&self, id: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(OidcKey::Login.key(s.prefix(), id))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms(ttl));
                s.query::<()>(&cmd).await
            }
            SessionStore::Memory(s) => {
                s.oidc_put(OidcKey::Login.key("", id), value, ttl);
                Ok(())
            }
        }
    }

    /// Takes a login's state: the first call gets it, every later one `None`.
    pub async fn oidc_take(&self, id: &str) -> Result<Option<String>, StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let mut cmd = redis::cmd("GETDEL");
                cmd.arg(OidcKey::Login.key(s.prefix(), id));
                // Not retried: a lost answer has taken it anyway (the login fails, safely).
                s.query_once::<Option<String>>(&cmd).await
            }
            SessionStore::Memory(s) => Ok(s.oidc_take(&OidcKey::Login.key("", id))),
        }
    }

    /// True the first time `jti` (already qualified by the provider's name) is seen within
    /// `ttl`; false for a replay.
    pub async fn oidc_first_jti(&self, jti: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(OidcKey::Jti.key(s.prefix(), jti))
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl));
                // Not retried: a resend would find its own first write and say "replay".
                let set: Option<String> = s.query_once(&cmd).await?;
                Ok(set.is_some())
            }
            SessionStore::Memory(s) => Ok(s.oidc_first(OidcKey::Jti.key("", jti), ttl)),
        }
    }

    /// Records that gateway session `sid` came from provider session `provider_sid`
    /// (qualified by the provider's name); the set lives `ttl` (the sessions' lifetime).
    pub async fn oidc_link(
        &self,
        provider_sid: &str,
        sid: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let key = OidcKey::ProviderSession.key(s.prefix(), provider_sid);
                let mut sadd = redis::cmd("SADD");
                sadd.arg(&key).arg(sid);
                s.query::<i64>(&sadd).await?;
                let mut expire = redis::cmd("PEXPIRE");
                expire.arg(&key).arg(ttl_ms(ttl));
                s.query::<i64>(&expire).await.map(|_| ())
            }
            SessionStore::Memory(s) => {
                s.oidc_link(OidcKey::ProviderSession.key("", provider_sid), sid, ttl);
                Ok(())
            }
        }
    }

    /// The gateway sessions provider session `provider_sid` began (the set stays until it
    /// expires: ending a session twice is harmless, losing one is not).
    pub async fn oidc_linked(&self, provider_sid: &str) -> Result<Vec<String>, StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let mut members = redis::cmd("SMEMBERS");
                members.arg(OidcKey::ProviderSession.key(s.prefix(), provider_sid));
                s.query(&members).await
            }
            SessionStore::Memory(s) => {
                Ok(s.oidc_linked(&OidcKey::ProviderSession.key("", provider_sid)))
            }
        }
    }

    /// Forgets a seen `jti` (its logout could not be carried out: the provider's retry of
    /// the same token must be accepted).
    pub async fn oidc_forget_jti(&self, jti: &str) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(s) => {
                let mut del = redis::cmd("DEL");
                del.arg(OidcKey::Jti.key(s.prefix(), jti));
                s.query::<i64>(&del).await.map(|_| ())
            }
            SessionStore::Memory(s) => {
                s.oidc_take(&OidcKey::Jti.key("", jti));
                Ok(())
            }
        }
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_braced_per_id() {
        assert_eq!(OidcKey::Login.key("gw:", "abc"), "gw:oidc-login:{abc}");
        assert_eq!(OidcKey::Jti.key("gw:", "sso:j1"), "gw:oidc-jti:{sso:j1}");
        assert_eq!(
            OidcKey::ProviderSession.key("", "sso:s1"),
            "oidc-sid:{sso:s1}"
        );
    }
}
