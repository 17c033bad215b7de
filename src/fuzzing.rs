//! Entry points for the cargo-fuzz targets in `fuzz/` that are otherwise private to the crate.
//! Not an API: hidden from the docs, and nothing in the gateway calls them. Each is a thin
//! pass-through, so the fuzzers exercise exactly the code the request path runs.

use http::Request;
use serde_json::{Map, Value};

use crate::auth::jwt::claims::ClaimRules;
use crate::auth::jwt::strict_json::{self, StrictJsonError};
use crate::auth::jwt::{TokenError, VerifiedToken};
use crate::error::GatewayError;

/// The one host of a request (`Host` / `:authority`), as the TLS listener reads it.
pub fn request_host<B>(req: &Request<B>) -> Result<String, GatewayError> {
    crate::http::host::of_request(req).ok_or(GatewayError::BadHost)
}

/// One JSON part of a token (decoded from base64url) through the duplicate-refusing parser:
/// `Err(TokenError::DuplicateKey)` or `Err(TokenError::Malformed)` as verification maps them.
pub fn jwt_json_object(bytes: &[u8]) -> Result<Map<String, Value>, TokenError> {
    strict_json::parse_object(bytes).map_err(|e| match e {
        StrictJsonError::Malformed => TokenError::Malformed,
        StrictJsonError::DuplicateKey => TokenError::DuplicateKey,
    })
}

/// What [`jwt_check_claims`] requires; the fuzz targets fix one set.
#[derive(Debug, Clone)]
pub struct ClaimRulesSpec<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Seconds.
    pub leeway: u64,
    pub user_id_claim: &'a str,
    pub session_claim: &'a str,
    pub roles_claim: &'a str,
}

/// The gateway's own claim check (after the signature) at `now` (Unix seconds).
pub fn jwt_check_claims(
    spec: &ClaimRulesSpec<'_>,
    claims: &Map<String, Value>,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    ClaimRules {
        index: 0,
        user_prefix: None,
        kept_claims: Vec::new(),
        issuer: spec.issuer.to_owned(),
        audience: spec.audience.to_owned(),
        leeway: spec.leeway,
        user_id_claim: spec.user_id_claim.to_owned(),
        session_claim: Some(spec.session_claim.to_owned()),
        roles_claim: spec.roles_claim.to_owned(),
    }
    .check(claims, now)
}
