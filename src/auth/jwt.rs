//! JWT (stub).
use crate::config;
pub struct Verifier;
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("x")]
    X,
}
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("x")]
    Malformed,
    #[error("x")]
    Expired,
}
impl TokenError {
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
pub struct VerifiedToken {
    pub user_id: String,
    pub session_id: String,
    pub roles: Vec<String>,
    pub expires_at: u64,
}
impl Verifier {
    pub async fn new(cfg: &config::Jwt) -> Result<Verifier, KeyLoadError> {
        let _ = cfg;
        Ok(Verifier)
    }
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let _ = token;
        Err(TokenError::Malformed)
    }
}
