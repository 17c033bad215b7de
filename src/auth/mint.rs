//! Mint (stub).
use crate::config;
use std::time::Duration;
pub struct Signer;
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("x")]
    X,
}
pub struct MintClaims<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub user_id_claim: &'a str,
    pub user_id: &'a str,
    pub session_claim: &'a str,
    pub session_id: &'a str,
    pub roles_claim: &'a str,
    pub roles: &'a [String],
    pub ttl: Duration,
}
impl Signer {
    pub fn from_config(auth: &config::AuthCenter) -> Result<Signer, super::jwt::KeyLoadError> {
        let _ = auth;
        Ok(Signer)
    }
    pub fn mint(&self, c: &MintClaims) -> Result<String, MintError> {
        let _ = c;
        Ok(String::new())
    }
}
