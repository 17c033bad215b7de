//! Browser login through an OpenID provider (`[oidc]`, docs/contract.md section 9): the
//! authorization code flow with PKCE, `state` and `nonce` (`login.rs`), and OpenID
//! Back-Channel Logout 1.0 (`backchannel.rs`). A login ends in an ordinary gateway session for
//! `<name>:<sub>`, so refresh, logout, the session list and kick work for it as for any other.
//!
//! The provider's metadata (discovery) and keys are read at start, like an `[[issuer]]`'s;
//! the same verifier checks its ID tokens and logout tokens (audience: the client id).

mod backchannel;
mod login;

use http::Uri;

use crate::auth::discovery::{self, ProviderMetadata};
use crate::auth::issuers::discovery_error;
use crate::auth::jwt::{JwksError, KeyLoadError, Verifier, VerifierSpec};
use crate::auth::outbound::Outbound;
use crate::config;

pub(super) use backchannel::backchannel_logout;
pub(super) use login::{begin, callback};

/// Where the login starts and where logout tokens come, under `auth.path`.
pub(super) const LOGIN: &str = "/oidc/login";
pub(super) const BACKCHANNEL: &str = "/oidc/backchannel-logout";

/// The configured provider, discovered.
pub(super) struct Provider {
    cfg: config::Oidc,
    authorization_endpoint: Uri,
    token_endpoint: Uri,
    userinfo_endpoint: Option<Uri>,
    /// The provider's keys; `aud` must be the client id.
    verifier: Verifier,
    client: Outbound,
    /// Claims some route passes upstream: kept in the session of an OpenID login.
    kept_claims: Vec<String>,
}

impl Provider {
    /// Discovery, then the provider's JWKS: both must answer at start.
    pub(super) async fn new(
        cfg: &config::Oidc,
        kept_claims: Vec<String>,
    ) -> Result<Provider, KeyLoadError> {
        let key = "oidc.issuer";
        let meta: ProviderMetadata = discovery::discover(&cfg.issuer)
            .await
            .map_err(|e| discovery_error(key, &cfg.issuer, e))?;
        let missing = |what: &str| KeyLoadError::Jwks {
            key: key.to_owned(),
            url: cfg.issuer.clone(),
            source: JwksError::Discovery(format!("the discovery document has no {what}")),
        };
        if !meta.pkce_s256 {
            return Err(missing("S256 in code_challenge_methods_supported"));
        }
        let authorization_endpoint = meta
            .authorization_endpoint
            .clone()
            .ok_or_else(|| missing("authorization_endpoint"))?;
        let token_endpoint = meta
            .token_endpoint
            .clone()
            .ok_or_else(|| missing("token_endpoint"))?;
        let spec = VerifierSpec {
            index: 0,
            name: Some(cfg.name.clone()),
            algorithms: cfg.algorithms.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.client_id.clone(),
            leeway: cfg.leeway,
            user_id_claim: "sub".to_owned(),
            roles_claim: cfg.roles_claim.clone(),
            session_claim: None,
            keys: Vec::new(),
            jwks_url: Some(meta.jwks_uri.clone()),
            jwks_refresh: std::time::Duration::from_secs(300),
            kept_claims: Vec::new(),
            jwks_key: key.to_owned(),
        };
        let verifier = Verifier::from_spec(&spec).await?;
        let client = Outbound::for_url(&token_endpoint).map_err(|e| KeyLoadError::Jwks {
            key: key.to_owned(),
            url: cfg.issuer.clone(),
            source: JwksError::Fetch(e),
        })?;
        Ok(Provider {
            cfg: cfg.clone(),
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint: meta.userinfo_endpoint,
            verifier,
            client,
            kept_claims,
        })
    }

    /// `<name>:<sub>`: these users never collide with the gateway's own.
    fn user_id(&self, sub: &str) -> String {
        format!("{}:{sub}", self.cfg.name)
    }

    /// A provider session id qualified by the provider's name (the store's key).
    fn provider_session(&self, sid: &str) -> String {
        format!("{}:{sid}", self.cfg.name)
    }

    pub(super) fn redirect_path(&self) -> &str {
        &self.cfg.redirect_path
    }
}
