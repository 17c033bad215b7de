//! Hop-by-hop (stub).
use http::{HeaderMap, HeaderValue};
pub fn remove(headers: &mut HeaderMap) {
    let _ = headers;
}
pub fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let _ = headers;
    None
}
pub fn remove_keep_upgrade(headers: &mut HeaderMap) {
    let _ = headers;
}
