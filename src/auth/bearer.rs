//! Bearer (stub).
use http::HeaderMap;
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("x")]
    Ambiguous,
    #[error("x")]
    Malformed,
}
pub fn extract(
    headers: &HeaderMap,
    cookie_name: Option<&str>,
) -> Result<Option<String>, BearerError> {
    let _ = (headers, cookie_name);
    Ok(None)
}
pub fn strip_token(headers: &mut HeaderMap, cookie_name: Option<&str>) {
    let _ = (headers, cookie_name);
}
impl BearerError {
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
