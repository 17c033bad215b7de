//! JWT verification with a pinned algorithm list, keys by kid, and a JWKS cache.
//!
//! The order of a check, and why:
//! 1. Size (8 KiB) before any parsing.
//! 2. Our own parse of the header and payload: base64url, one JSON object each, no repeated
//!    key (serde_json would silently keep the last one), no `crit`, no key carried in the
//!    token (`jwk`, `jku`, `x5u`, `x5c`), `alg` a configured algorithm (never `none`).
//! 3. Our stricter claim check (`claims.rs`): cheap, so a token that would be refused anyway
//!    (expired, another audience, no session id) never costs a signature check.
//! 4. The key: by `kid` (a map lookup, nothing else), or without `kid` every configured key
//!    whose kind fits the header's `alg` (never a key fetched from `jwks_url`: such a token
//!    is refused). The key's kind decides what `alg` may be, never the token.
//! 5. An empty or all-zero signature fails here, then jsonwebtoken checks the signature and
//!    its own claim validation, configured explicitly (`exp`, `iss`, `aud` required, `nbf`
//!    checked).
//!
//! [`Verifier::verify_cached_keys`] never does I/O. [`Verifier::verify`] adds one thing: a
//! token whose `kid` is unknown triggers a JWKS refresh (at most one per 30 s, shared by all
//! requests) and a second try.

pub(crate) mod claims;
mod jwks;
mod keys;
pub(crate) mod strict_json;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use jwks::JwksError;
pub(crate) use keys::check_rsa as check_rsa_key;

use crate::config;
use claims::ClaimRules;
use jwks::JwksClient;
use keys::{KeySet, NamedKey, VerifyKey};
use strict_json::StrictJsonError;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A token with an unknown `kid` refreshes the JWKS at most this often.
const ON_DEMAND_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The background JWKS refresh never runs more often than this, whatever the config says.
const MIN_BACKGROUND_REFRESH: Duration = Duration::from_secs(1);
/// Clock-skew allowance is capped here so that time arithmetic can never wrap.
const MAX_LEEWAY: Duration = Duration::from_secs(24 * 3600);
/// Header `typ` values accepted (compared ignoring case); absent is accepted too.
const ACCEPTED_TYP: [&str; 4] = ["JWT", "at+jwt", "application/jwt", "application/at+jwt"];

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Which issuer verified it: 0 is the gateway's own (`[jwt]`), then the `[[issuer]]`
    /// tables in file order ([`VerifierSpec::index`]).
    pub issuer: usize,
    /// For an external issuer, `<name>:<claim>`, so it never collides with the gateway's own.
    pub user_id: String,
    /// `None` for an issuer whose tokens need no gateway session.
    pub session_id: Option<String>,
    /// Empty when the token has no roles claim.
    pub roles: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// The claims some route passes upstream (`claims_to_headers`), as header text:
    /// `(claim, value)`; a claim the token lacks, or whose value is not a string, number,
    /// boolean or array of strings, is left out.
    pub claims: Vec<(String, String)>,
    /// Its identity as header values, built on first use (`identity_headers::set`).
    pub headers: super::header_memo::TokenHeaders,
}

/// What one issuer's tokens must be, from `[jwt]` (the gateway's own) or an `[[issuer]]`.
#[derive(Debug, Clone)]
pub struct VerifierSpec {
    /// [`VerifiedToken::issuer`] of the tokens it verifies.
    pub index: usize,
    /// `Some("corp")`: user ids become `corp:<sub>`.
    pub name: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    pub user_id_claim: String,
    pub roles_claim: String,
    /// `None`: the token alone authenticates; no session claim is read.
    pub session_claim: Option<String>,
    pub keys: Vec<config::JwtKey>,
    pub jwks_url: Option<http::Uri>,
    pub jwks_refresh: Duration,
    /// Claims kept in [`VerifiedToken::claims`].
    pub kept_claims: Vec<String>,
    /// The config key a JWKS failure is reported at (`jwt.jwks_url`, `issuer[0].issuer`).
    pub jwks_key: String,
}

impl VerifierSpec {
    /// The gateway's own tokens, as `[jwt]` describes them.
    pub fn own(cfg: &config::Jwt) -> VerifierSpec {
        VerifierSpec {
            index: 0,
            name: None,
            algorithms: cfg.algorithms.clone(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway,
            user_id_claim: cfg.user_id_claim.clone(),
            roles_claim: cfg.roles_claim.clone(),
            session_claim: Some(cfg.session_claim.clone()),
            keys: cfg.keys.clone(),
            jwks_url: cfg.jwks_url.clone(),
            jwks_refresh: cfg.jwks_refresh,
            kept_claims: Vec::new(),
            jwks_key: "jwt.jwks_url".to_owned(),
        }
    }
}

/// Why a token was refused. Every variant is a 401 `invalid_token`; the variant only feeds
/// logs and metrics through [`TokenError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not a well-formed signed JWT")]
    Malformed,
    #[error("a JSON object in the token repeats a key")]
    DuplicateKey,
    #[error("algorithm not accepted (not configured, `none`, or not the key's)")]
    Algorithm,
    #[error("no key has the token's kid")]
    UnknownKid,
    #[error("token has no kid, and its algorithm's keys come from a JWKS")]
    MissingKid,
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf)")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("missing claim: {0}")]
    MissingClaim(&'static str),
    #[error("claim {0} has the wrong type or value")]
    BadClaim(&'static str),
    #[error("token header has crit")]
    Crit,
    #[error("token header carries a key (jwk, jku, x5u or x5c)")]
    EmbeddedKey,
    #[error("token type (typ) is not a JWT")]
    TokenType,
}

impl TokenError {
    /// A stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge => "too_large",
            TokenError::Malformed => "malformed",
            TokenError::DuplicateKey => "duplicate_key",
            TokenError::Algorithm => "algorithm",
            TokenError::UnknownKid => "unknown_kid",
            TokenError::MissingKid => "missing_kid",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::BadClaim(_) => "bad_claim",
            TokenError::Crit => "crit",
            TokenError::EmbeddedKey => "embedded_key",
            TokenError::TokenType => "token_type",
        }
    }
}

/// Why the keys could not be loaded at start (verification keys, JWKS, or a signing key).
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("{}: cannot read key file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    BadKey { path: PathBuf, reason: &'static str },
    #[error("key {kid:?}: the secret in ${env} is empty")]
    EmptySecret { kid: String, env: String },
    #[error("key {kid:?}: an {kind} key can verify none of jwt.algorithms")]
    NoUsableAlgorithm { kid: String, kind: &'static str },
    #[error("[jwt] has neither keys nor jwks_url")]
    NoKeys,
    #[error("{key} {url}: {source}")]
    Jwks {
        /// The config key naming the URL (or the issuer it was discovered from).
        key: String,
        url: String,
        source: JwksError,
    },
}

impl KeyLoadError {
    /// The key of the config whose value failed to load, as `file:line:col: key: reason`.
    pub fn in_config(&self, places: &crate::config::Places) -> crate::config::ConfigError {
        match self {
            KeyLoadError::Read { path, .. } | KeyLoadError::BadKey { path, .. } => {
                places.at_file(path, self.to_string())
            }
            KeyLoadError::Jwks { key, .. } => places.at_key(key, self.to_string()),
            KeyLoadError::EmptySecret { .. }
            | KeyLoadError::NoUsableAlgorithm { .. }
            | KeyLoadError::NoKeys => places.at_key("jwt.keys", self.to_string()),
        }
    }
}

/// Verifies access tokens. Cheap to clone; clones share keys and the JWKS cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    algorithms: Vec<Algorithm>,
    /// One explicit jsonwebtoken `Validation` per configured algorithm, built once.
    validations: Vec<(Algorithm, Validation)>,
    rules: ClaimRules,
    /// `[jwt] keys`; they stay when a JWKS refresh replaces the fetched ones.
    configured: Vec<NamedKey>,
    keys: ArcSwap<KeySet>,
    jwks: Option<JwksState>,
}

struct JwksState {
    client: JwksClient,
    /// Bumped on every successful refresh, so waiters can tell one happened.
    generation: AtomicU64,
    /// When an unknown kid last caused a fetch; held while that fetch runs.
    on_demand: tokio::sync::Mutex<Option<Instant>>,
    on_demand_interval: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.inner.algorithms)
            .field("configured_keys", &self.inner.configured.len())
            .field(
                "jwks_url",
                &self.inner.jwks.as_ref().map(|j| j.client.url()),
            )
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Loads `[jwt]` keys; with `jwks_url`, fetches it now (failure is an error) and starts a
    /// background refresh every `jwks_refresh`.
    pub async fn new(cfg: &config::Jwt) -> Result<Verifier, KeyLoadError> {
        Self::from_spec(&VerifierSpec::own(cfg)).await
    }

    /// A verifier for one issuer's tokens.
    pub async fn from_spec(spec: &VerifierSpec) -> Result<Verifier, KeyLoadError> {
        Self::with_on_demand_interval(spec, ON_DEMAND_REFRESH_INTERVAL).await
    }

    async fn with_on_demand_interval(
        cfg: &VerifierSpec,
        on_demand_interval: Duration,
    ) -> Result<Verifier, KeyLoadError> {
        if cfg.keys.is_empty() && cfg.jwks_url.is_none() {
            return Err(KeyLoadError::NoKeys);
        }
        let configured = keys::load_configured(&cfg.keys, &cfg.algorithms).await?;
        let leeway = cfg.leeway.min(MAX_LEEWAY).as_secs();
        let validations = cfg
            .algorithms
            .iter()
            .map(|alg| (*alg, validation(*alg, cfg, leeway)))
            .collect();

        let mut fetched = Vec::new();
        let jwks = match &cfg.jwks_url {
            None => None,
            Some(url) => {
                let jwks_err = |source| KeyLoadError::Jwks {
                    key: cfg.jwks_key.clone(),
                    url: url.to_string(),
                    source,
                };
                let client = JwksClient::new(url.clone()).map_err(jwks_err)?;
                fetched = client.fetch(&cfg.algorithms).await.map_err(jwks_err)?;
                Some(JwksState {
                    client,
                    generation: AtomicU64::new(0),
                    on_demand: tokio::sync::Mutex::new(None),
                    on_demand_interval,
                })
            }
        };
        let inner = Arc::new(Inner {
            algorithms: cfg.algorithms.clone(),
            validations,
            rules: ClaimRules {
                index: cfg.index,
                user_prefix: cfg.name.as_ref().map(|n| format!("{n}:")),
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                leeway,
                user_id_claim: cfg.user_id_claim.clone(),
                session_claim: cfg.session_claim.clone(),
                roles_claim: cfg.roles_claim.clone(),
                kept_claims: cfg.kept_claims.clone(),
            },
            keys: ArcSwap::from_pointee(KeySet::new(&configured, &fetched)),
            configured,
            jwks,
        });
        if inner.jwks.is_some() {
            let period = cfg.jwks_refresh.max(MIN_BACKGROUND_REFRESH);
            tokio::spawn(background_refresh(Arc::downgrade(&inner), period));
        }
        Ok(Verifier { inner })
    }

    /// Verifies `token`; an unknown `kid` may refresh the JWKS once (rate-limited) and retry.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_parsed(&Parsed::new(token)?).await
    }

    /// Bumped whenever the key set is replaced (a JWKS refresh): what was verified under an
    /// older generation must be verified again.
    pub fn key_generation(&self) -> u64 {
        self.inner.generation()
    }

    /// The clock skew allowed on `exp`/`nbf`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.inner.rules.leeway
    }

    /// Verifies `token` with the keys in memory; never does I/O.
    pub fn verify_cached_keys(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_parsed_cached(&Parsed::new(token)?)
    }

    /// [`Verifier::verify`] for a token already parsed (to find its issuer).
    pub async fn verify_parsed(&self, token: &Parsed<'_>) -> Result<VerifiedToken, TokenError> {
        let seen = self.inner.generation();
        match self.verify_parsed_cached(token) {
            Err(TokenError::UnknownKid)
                if Box::pin(self.inner.refresh_for_unknown_kid(seen)).await =>
            {
                self.verify_parsed_cached(token)
            }
            result => result,
        }
    }

    fn verify_parsed_cached(&self, token: &Parsed<'_>) -> Result<VerifiedToken, TokenError> {
        self.inner.verify_cached(token, crate::clock::unix_now())
    }

    /// For tokens that are not access tokens (an OpenID provider's ID and logout tokens):
    /// the header (with `typ` one of `typ`, or absent), the key, the signature, and the
    /// registered claims (`exp`, `nbf`, `iat`, `iss`, `aud`) as for an access token; the other
    /// claims are returned for the caller to judge. An unknown kid may refresh the JWKS once.
    pub async fn verify_claims(
        &self,
        token: &str,
        typ: &[&str],
    ) -> Result<Map<String, Value>, TokenError> {
        let parsed = Parsed::new(token)?;
        let check = |parsed: &Parsed<'_>| {
            let now = crate::clock::unix_now();
            self.inner.check_signed(parsed, typ, now)?;
            self.inner.rules.check_registered(&parsed.claims, now)?;
            Ok(parsed.claims.clone())
        };
        let seen = self.inner.generation();
        match check(&parsed) {
            Err(TokenError::UnknownKid)
                if Box::pin(self.inner.refresh_for_unknown_kid(seen)).await =>
            {
                check(&parsed)
            }
            result => result,
        }
    }

    /// The `iss` this verifier requires.
    pub fn issuer(&self) -> &str {
        &self.inner.rules.issuer
    }
}

/// A token split and its two JSON parts parsed (duplicate-free), signature not yet checked:
/// parsed once, then given to the verifier of its issuer.
pub struct Parsed<'t> {
    token: &'t str,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature_b64: &'t str,
}

impl<'t> Parsed<'t> {
    /// Size (8 KiB) first, then three base64url parts, the first two JSON objects.
    pub fn new(token: &'t str) -> Result<Parsed<'t>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        Ok(Parsed {
            token,
            header: json_part(header_b64)?,
            claims: json_part(payload_b64)?,
            signature_b64,
        })
    }

    /// The unverified `iss`: only for choosing which issuer's keys and rules to check with.
    pub fn issuer(&self) -> Result<&str, TokenError> {
        match self.claims.get("iss") {
            None => Err(TokenError::MissingClaim("iss")),
            Some(Value::String(iss)) => Ok(iss),
            Some(_) => Err(TokenError::Issuer),
        }
    }

    /// The unverified claims (tests and logs only; never trusted before a verifier agrees).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

impl Inner {
    /// The claims first: a token this issuer would refuse anyway (expired, wrong audience,
    /// no session id) is refused before the costly signature check.
    fn verify_cached(&self, parsed: &Parsed<'_>, now: u64) -> Result<VerifiedToken, TokenError> {
        let verified = self.rules.check(&parsed.claims, now)?;
        self.check_signed(parsed, &ACCEPTED_TYP, now)?;
        Ok(verified)
    }

    /// Header, key and signature (and jsonwebtoken's own claim validation).
    fn check_signed(&self, parsed: &Parsed<'_>, typ: &[&str], now: u64) -> Result<(), TokenError> {
        let (token, header, claims) = (parsed.token, &parsed.header, &parsed.claims);
        let (alg, kid) = check_header(header, &self.algorithms, typ)?;

        let signature = URL_SAFE_NO_PAD
            .decode(parsed.signature_b64)
            .map_err(|_| TokenError::Malformed)?;
        if signature.iter().all(|b| *b == 0) {
            // Also true for an empty signature.
            return Err(TokenError::Signature);
        }

        let keys = self.keys.load();
        let candidates: Vec<&Arc<VerifyKey>> = match kid {
            Some(kid) => {
                let key = keys.get(kid).ok_or(TokenError::UnknownKid)?;
                if !key.accepts(alg, &self.algorithms) {
                    return Err(TokenError::Algorithm);
                }
                vec![key]
            }
            None => {
                let configured: Vec<_> = keys
                    .kidless()
                    .iter()
                    .filter(|k| k.accepts(alg, &self.algorithms))
                    .collect();
                if configured.is_empty() && self.jwks.is_some() {
                    return Err(TokenError::MissingKid);
                }
                configured
            }
        };
        if candidates.is_empty() {
            return Err(TokenError::Algorithm);
        }
        let validation = self
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
            .ok_or(TokenError::Algorithm)?;

        for key in candidates {
            match jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key.key, validation) {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(self.map_library_error(e.kind(), claims, now)),
            }
        }
        Err(TokenError::Signature)
    }

    /// Maps a jsonwebtoken refusal. For claim failures our own check names the claim more
    /// precisely, and it must refuse as well; its answer is used when it has one.
    fn map_library_error(
        &self,
        kind: &ErrorKind,
        claims: &Map<String, Value>,
        now: u64,
    ) -> TokenError {
        let ours = || self.rules.check(claims, now).err();
        match kind {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::RsaFailedSigning
            | ErrorKind::Signing(_)
            | ErrorKind::Provider(_) => TokenError::Signature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => TokenError::Malformed,
            ErrorKind::ExpiredSignature => ours().unwrap_or(TokenError::Expired),
            ErrorKind::ImmatureSignature => ours().unwrap_or(TokenError::NotYetValid),
            ErrorKind::InvalidIssuer => ours().unwrap_or(TokenError::Issuer),
            ErrorKind::InvalidAudience => ours().unwrap_or(TokenError::Audience),
            ErrorKind::InvalidSubject => ours().unwrap_or(TokenError::BadClaim("sub")),
            ErrorKind::MissingRequiredClaim(c) => {
                ours().unwrap_or(TokenError::MissingClaim(spec_claim(c)))
            }
            ErrorKind::InvalidClaimFormat(c) => {
                ours().unwrap_or(TokenError::BadClaim(spec_claim(c)))
            }
            // ErrorKind is #[non_exhaustive], so the compiler requires this arm. A failure
            // kind added upstream still refuses the token.
            _ => TokenError::Malformed,
        }
    }

    fn generation(&self) -> u64 {
        self.jwks
            .as_ref()
            .map_or(0, |j| j.generation.load(Ordering::Acquire))
    }

    /// Refreshes the JWKS for a token with an unknown kid, unless one was fetched in the last
    /// 30 s. Concurrent callers wait for the same fetch. True when the keys changed since
    /// `seen` and a retry is worth it.
    async fn refresh_for_unknown_kid(&self, seen: u64) -> bool {
        let Some(jwks) = &self.jwks else {
            return false;
        };
        let mut last = jwks.on_demand.lock().await;
        if jwks.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < jwks.on_demand_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh_jwks().await.is_ok()
    }

    /// Fetches the JWKS and installs it; on failure the keys in force stay as they are.
    async fn refresh_jwks(&self) -> Result<(), JwksError> {
        let Some(jwks) = &self.jwks else {
            return Ok(());
        };
        match jwks.client.fetch(&self.algorithms).await {
            Ok(fetched) => {
                let set = KeySet::new(&self.configured, &fetched);
                self.keys.store(Arc::new(set));
                jwks.generation.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(url = %jwks.client.url(), keys = fetched.len(), "JWKS refreshed");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(url = %jwks.client.url(), error = %e, "JWKS refresh failed; keeping the previous keys");
                Err(e)
            }
        }
    }
}

/// Refreshes every `period` until the verifier is dropped.
async fn background_refresh(inner: Weak<Inner>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // A failure is logged inside and leaves the previous keys in force.
        let _ = inner.refresh_jwks().await;
    }
}

/// The explicit jsonwebtoken validation for one algorithm: nothing left to its defaults.
fn validation(alg: Algorithm, cfg: &VerifierSpec, leeway: u64) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.leeway = leeway;
    v.reject_tokens_expiring_in_less_than = 0;
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.audience]);
    v.sub = None;
    v
}

/// One base64url JSON part of the token, as a duplicate-free object.
fn json_part(b64: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Malformed)?;
    strict_json::parse_object(&bytes).map_err(|e| match e {
        StrictJsonError::Malformed => TokenError::Malformed,
        StrictJsonError::DuplicateKey => TokenError::DuplicateKey,
    })
}

/// Checks the header and returns its algorithm and kid.
fn check_header<'h>(
    header: &'h Map<String, Value>,
    configured: &[Algorithm],
    accepted_typ: &[&str],
) -> Result<(Algorithm, Option<&'h str>), TokenError> {
    if header.contains_key("crit") {
        return Err(TokenError::Crit);
    }
    if ["jwk", "jku", "x5u", "x5c"]
        .iter()
        .any(|k| header.contains_key(*k))
    {
        return Err(TokenError::EmbeddedKey);
    }
    if header.contains_key("enc") || header.contains_key("zip") {
        // An encrypted token (JWE); we only take signed ones.
        return Err(TokenError::Malformed);
    }
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if accepted_typ.iter().any(|a| a.eq_ignore_ascii_case(t)) => {}
        Some(Value::String(_)) => return Err(TokenError::TokenType),
        Some(_) => return Err(TokenError::Malformed),
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::Malformed),
    };
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a,
        _ => return Err(TokenError::Malformed),
    };
    // `none` in any letter case fails here: it parses as no Algorithm and is never configured.
    let alg: Algorithm = alg.parse().map_err(|_| TokenError::Algorithm)?;
    if !configured.contains(&alg) {
        return Err(TokenError::Algorithm);
    }
    Ok((alg, kid))
}

/// The `&'static` name of a registered claim named by jsonwebtoken.
fn spec_claim(name: &str) -> &'static str {
    match name {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "unknown",
    }
}
