//! `X-Request-Id`: kept when the client sent one well-formed value, generated otherwise.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only ever built from visible ASCII.
        f.write_str(self.0.to_str().unwrap_or("-"))
    }
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`, sent exactly once.
fn well_formed(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

pub fn from_request(headers: &HeaderMap) -> RequestId {
    let mut all = headers.get_all(&HEADER).iter();
    if let (Some(v), None) = (all.next(), all.next()) {
        if well_formed(v) {
            return RequestId(v.clone());
        }
    }
    generate()
}

pub fn generate() -> RequestId {
    let n: u128 = rand::random();
    // 32 hex digits are always a valid header value.
    RequestId(HeaderValue::from_str(&format!("{n:032x}")).expect("hex is a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_good_one_and_replaces_bad_ones() {
        let mut h = HeaderMap::new();
        h.insert(&HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(from_request(&h).to_string(), "abc-123");
        h.insert(&HEADER, HeaderValue::from_static("has space"));
        assert_ne!(from_request(&h).to_string(), "has space");
        h.insert(&HEADER, HeaderValue::from_static("a"));
        h.append(&HEADER, HeaderValue::from_static("b"));
        assert_eq!(from_request(&h).to_string().len(), 32);
        assert_eq!(from_request(&HeaderMap::new()).to_string().len(), 32);
    }
}
