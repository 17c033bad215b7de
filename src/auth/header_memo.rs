//! A header value built once and then shared: the identity headers of a cached token or
//! session are made on the first request that needs them, and every later request served
//! from the same cache entry gets a clone (a reference count, no copy, no allocation).

use std::sync::OnceLock;

use http::HeaderValue;

/// Empty until [`HeaderMemo::get_or_build`]; `None` inside means the text cannot be a header
/// value (remembered too, so a refusal is not recomputed either).
#[derive(Default, Clone)]
pub struct HeaderMemo(OnceLock<Option<HeaderValue>>);

impl HeaderMemo {
    /// The value, built by `build` the first time.
    pub fn get_or_build(&self, build: impl FnOnce() -> Option<HeaderValue>) -> Option<HeaderValue> {
        self.0.get_or_init(build).clone()
    }
}

/// The identity header values of one verified token (kept with it in the token cache).
#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub struct TokenHeaders {
    pub user_id: HeaderMemo,
    pub session_id: HeaderMemo,
    /// The token's roles; a session that has roles of its own has its own memo.
    pub roles: HeaderMemo,
}

/// A memo is derived data: two records are equal whatever their memos hold.
impl PartialEq for HeaderMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeaderMemo {}

impl std::fmt::Debug for HeaderMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderMemo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_once() {
        let memo = HeaderMemo::default();
        let mut calls = 0;
        for _ in 0..3 {
            let v = memo.get_or_build(|| {
                calls += 1;
                Some(HeaderValue::from_static("alice"))
            });
            assert_eq!(v.unwrap(), "alice");
        }
        assert_eq!(calls, 1);
    }
}
