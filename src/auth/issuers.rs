//! The token issuers a gateway trusts: its own (`[jwt]`, index 0) and each `[[issuer]]`
//! (its keys found by discovery at start). A token is parsed once, its unverified `iss`
//! picks the one issuer whose keys, algorithms, audience and claims then decide; a token
//! naming no configured issuer is refused before any key is tried. Which issuers a route
//! accepts is checked after verification (the verified-token cache serves every route).

use crate::config::{self, Config, IssuerSession, OWN_ISSUER};

use super::discovery::{self, DiscoveryError};
use super::jwt::{
    JwksError, KeyLoadError, Parsed, TokenError, VerifiedToken, Verifier, VerifierSpec,
};

/// Every issuer, in [`VerifiedToken::issuer`] order.
pub struct Issuers {
    list: Vec<Issuer>,
}

struct Issuer {
    /// [`OWN_ISSUER`] or the `[[issuer]]` name.
    name: std::sync::Arc<str>,
    verifier: Verifier,
}

impl Issuers {
    /// The gateway's own verifier and one per `[[issuer]]` (discovery first, unless the
    /// table names its `jwks_url`). A provider that cannot be reached is a start error.
    pub async fn new(config: &Config) -> Result<Issuers, KeyLoadError> {
        let kept = kept_claims(config);
        let mut own = VerifierSpec::own(&config.jwt);
        own.kept_claims = kept.clone();
        let mut list = vec![Issuer {
            name: OWN_ISSUER.into(),
            verifier: Verifier::from_spec(&own).await?,
        }];
        for (i, cfg) in config.issuers.iter().enumerate() {
            let spec = spec(i, cfg, kept.clone()).await?;
            list.push(Issuer {
                name: cfg.name.as_str().into(),
                verifier: Verifier::from_spec(&spec).await?,
            });
        }
        Ok(Issuers { list })
    }

    /// Only the gateway's own tokens (tools, tests).
    pub fn own(verifier: Verifier) -> Issuers {
        Issuers {
            list: vec![Issuer {
                name: OWN_ISSUER.into(),
                verifier,
            }],
        }
    }

    /// Verifies `token` with the issuer its `iss` names (an unknown kid may refresh that
    /// issuer's JWKS once, rate-limited).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let parsed = Parsed::new(token)?;
        let iss = parsed.issuer()?;
        let issuer = self
            .list
            .iter()
            .find(|i| i.verifier.issuer() == iss)
            .ok_or(TokenError::Issuer)?;
        issuer.verifier.verify_parsed(&parsed).await
    }

    /// Changes whenever any issuer's keys are replaced: cached verdicts older than it are
    /// checked again.
    pub fn key_generation(&self) -> u64 {
        self.list
            .iter()
            .fold(0u64, |sum, i| sum.wrapping_add(i.verifier.key_generation()))
    }

    /// The clock skew the issuer of `token` allows, in seconds.
    pub fn leeway_secs(&self, token: &VerifiedToken) -> u64 {
        self.list
            .get(token.issuer)
            .map_or(0, |i| i.verifier.leeway_secs())
    }

    /// The name of issuer `index` ([`OWN_ISSUER`] for 0).
    pub fn name(&self, index: usize) -> std::sync::Arc<str> {
        self.list
            .get(index)
            .map_or_else(|| "".into(), |i| i.name.clone())
    }

    /// Whether `accepted` (a route's `issuers`) names issuer `index`.
    pub fn accepts(&self, accepted: &[String], index: usize) -> bool {
        self.list
            .get(index)
            .is_some_and(|i| accepted.iter().any(|a| **a == *i.name))
    }
}

/// Every claim some route passes upstream: each verifier keeps these.
pub fn kept_claims(config: &Config) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for route in &config.routes {
        for (_, claim) in &route.claims_to_headers {
            if !kept.contains(claim) {
                kept.push(claim.clone());
            }
        }
    }
    kept
}

/// The verifier spec of `[[issuer]]` number `i`, its JWKS URL discovered when not given.
async fn spec(
    i: usize,
    cfg: &config::Issuer,
    kept_claims: Vec<String>,
) -> Result<VerifierSpec, KeyLoadError> {
    let (jwks_url, jwks_key) = match &cfg.jwks_url {
        Some(url) => (url.clone(), format!("issuer[{i}].jwks_url")),
        None => {
            let key = format!("issuer[{i}].issuer");
            let meta = discovery::discover(&cfg.issuer)
                .await
                .map_err(|e| discovery_error(&key, &cfg.issuer, e))?;
            (meta.jwks_uri, key)
        }
    };
    Ok(VerifierSpec {
        index: i + 1,
        name: Some(cfg.name.clone()),
        algorithms: cfg.algorithms.clone(),
        issuer: cfg.issuer.clone(),
        audience: cfg.audience.clone(),
        leeway: cfg.leeway,
        user_id_claim: cfg.user_id_claim.clone(),
        roles_claim: cfg.roles_claim.clone(),
        session_claim: match cfg.session {
            IssuerSession::Required => Some(cfg.session_claim.clone()),
            IssuerSession::None => None,
        },
        keys: Vec::new(),
        jwks_url: Some(jwks_url),
        jwks_refresh: cfg.jwks_refresh,
        kept_claims,
        jwks_key,
    })
}

/// A discovery failure, reported at the issuer's key.
pub(crate) fn discovery_error(key: &str, issuer: &str, e: DiscoveryError) -> KeyLoadError {
    KeyLoadError::Jwks {
        key: key.to_owned(),
        url: issuer.to_owned(),
        source: JwksError::Discovery(e.to_string()),
    }
}
