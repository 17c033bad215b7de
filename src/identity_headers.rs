//! Identity headers (stub).
use crate::config::Headers;
use http::{HeaderMap, HeaderName};
pub struct IdentityNames {
    pub h: Headers,
}
impl IdentityNames {
    pub fn new(h: &Headers) -> Self {
        Self { h: h.clone() }
    }
}
pub struct Identity<'a> {
    pub user_id: &'a str,
    pub roles: &'a [String],
    pub session_id: &'a str,
}
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("bad value")]
    BadValue,
}
pub fn strip_inbound(headers: &mut HeaderMap, names: &IdentityNames) {
    let _ = (headers, names);
}
pub fn set(
    headers: &mut HeaderMap,
    names: &IdentityNames,
    identity: &Identity,
) -> Result<(), IdentityError> {
    let _ = (headers, names, identity);
    Ok(())
}
pub fn looks_like_identity(name: &HeaderName, names: &IdentityNames) -> bool {
    let _ = (name, names);
    false
}
