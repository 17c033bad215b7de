//! Finding the one token of a request: `Authorization: Bearer` or the token cookie.
//!
//! One token per request: two `Authorization` headers, the cookie twice with different values,
//! or a header and a cookie that disagree are ambiguous, and ambiguous means 401 rather than
//! a guess about which one the backend would have looked at.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

/// Why the request's token cannot be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// An `Authorization` header that is not exactly `Bearer <token>`, or a token cookie that
    /// is not a token.
    #[error("malformed Authorization header or token cookie")]
    Malformed,
    /// More than one token, and they are not the same.
    #[error("more than one token in the request")]
    Ambiguous,
}

impl BearerError {
    /// A stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BearerError::Malformed => "bearer_malformed",
            BearerError::Ambiguous => "bearer_ambiguous",
        }
    }
}

/// The request's token: `Authorization: Bearer <t>` (scheme in any case), else the cookie
/// `cookie_name`. `Ok(None)` when neither is there.
/// Borrowed from the headers: nothing is copied per request.
pub fn extract<'h>(
    headers: &'h HeaderMap,
    cookie_name: Option<&str>,
) -> Result<Option<&'h str>, BearerError> {
    let mut auth = headers.get_all(AUTHORIZATION).iter();
    let from_header = match (auth.next(), auth.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(BearerError::Ambiguous),
        (Some(value), None) => Some(parse_authorization(value)?),
    };
    let from_cookie = match cookie_name {
        Some(name) => cookie_token(headers, name)?,
        None => None,
    };
    match (from_header, from_cookie) {
        (Some(h), Some(c)) if h != c => Err(BearerError::Ambiguous),
        (Some(h), _) => Ok(Some(h)),
        (None, Some(c)) => Ok(Some(c)),
        (None, None) => Ok(None),
    }
}

/// Removes the `Authorization` header and the cookie `cookie_name` (only that one) so the
/// token does not travel upstream.
pub fn strip_token(headers: &mut HeaderMap, cookie_name: Option<&str>) {
    headers.remove(AUTHORIZATION);
    if let Some(name) = cookie_name {
        strip_cookie(headers, name);
    }
}

/// Removes the cookie `name` from every `Cookie` line, keeping the others.
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let cookies: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    if !cookies
        .iter()
        .any(|v| pairs(v.as_bytes()).any(|(n, _)| n == name.as_bytes()))
    {
        return;
    }
    headers.remove(COOKIE);
    for value in cookies {
        let kept: Vec<&[u8]> = value
            .as_bytes()
            .split(|b| *b == b';')
            .map(trim)
            .filter(|pair| !pair.is_empty() && cookie_name_of(pair) != name.as_bytes())
            .collect();
        if kept.is_empty() {
            continue;
        }
        // The parts come from a valid header value and are joined with "; ", so this holds;
        // were it ever to fail, dropping the cookie line is the safe side.
        if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.append(COOKIE, v);
        }
    }
}

/// `Bearer <token>`: the scheme in any case, one space, one token of RFC 6750 characters.
fn parse_authorization(value: &HeaderValue) -> Result<&str, BearerError> {
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !is_token68(token) {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

/// The named cookie's value across every `Cookie` header; twice with different values is
/// ambiguous. An empty value (a cleared cookie) counts as absent.
fn cookie_token<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, BearerError> {
    let mut found: Option<&[u8]> = None;
    for value in headers.get_all(COOKIE) {
        for (n, v) in pairs(value.as_bytes()) {
            if n != name.as_bytes() {
                continue;
            }
            let v = unquote(v);
            if v.is_empty() {
                continue;
            }
            match found {
                Some(prev) if prev != v => return Err(BearerError::Ambiguous),
                _ => found = Some(v),
            }
        }
    }
    match found {
        None => Ok(None),
        Some(v) => {
            let v = std::str::from_utf8(v).map_err(|_| BearerError::Malformed)?;
            if is_token68(v) {
                Ok(Some(v))
            } else {
                Err(BearerError::Malformed)
            }
        }
    }
}

/// `name=value` pairs of one Cookie header, trimmed; pairs without `=` are skipped.
fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|b| *b == b';').filter_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
    })
}

fn cookie_name_of(pair: &[u8]) -> &[u8] {
    match pair.iter().position(|b| *b == b'=') {
        Some(eq) => trim(&pair[..eq]),
        None => pair,
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// RFC 6750 `b64token`: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether the token [`extract`] takes from these headers is (or would be) the cookie's: the
/// cookie `cookie_name` is there (even malformed or repeated) and no `Authorization` header
/// is (a header always wins, and a cookie that disagrees with it is refused). A browser
/// attaches cookies to cross-site requests by itself; it never adds `Authorization`.
pub fn cookie_borne(headers: &HeaderMap, cookie_name: Option<&str>) -> bool {
    !headers.contains_key(AUTHORIZATION)
        && cookie_name.is_some_and(|name| !matches!(cookie_token(headers, name), Ok(None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const C: Option<&str> = Some("gw_access");

    #[test]
    fn bearer_header_any_case() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR a.b.c",
        ] {
            assert_eq!(
                extract(&headers(&[("authorization", v)]), C),
                Ok(Some("a.b.c"))
            );
        }
    }

    #[test]
    fn malformed_authorization() {
        for v in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer  a.b.c",
            "Bearer a.b.c extra",
            "Bearer a b",
            "Bearera.b.c",
            "Token a.b.c",
            "",
            "Bearer a,b",
            "Bearer \"a.b.c\"",
        ] {
            assert_eq!(
                extract(&headers(&[("authorization", v)]), C),
                Err(BearerError::Malformed),
                "{v:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer a\xffb").unwrap(),
        );
        assert_eq!(extract(&h, C), Err(BearerError::Malformed));
    }

    #[test]
    fn two_authorization_headers_are_ambiguous() {
        let h = headers(&[("authorization", "Bearer x"), ("authorization", "Bearer x")]);
        assert_eq!(extract(&h, C), Err(BearerError::Ambiguous));
    }

    #[test]
    fn cookie_fallback() {
        let h = headers(&[("cookie", "a=1; gw_access=t.o.k; b=2")]);
        assert_eq!(extract(&h, C), Ok(Some("t.o.k")));
        assert_eq!(extract(&h, None), Ok(None));
        assert_eq!(extract(&h, Some("other")), Ok(None));
        // Across several Cookie headers, quoted, repeated with the same value.
        let h = headers(&[
            ("cookie", "a=1"),
            ("cookie", "gw_access=\"t.o.k\""),
            ("cookie", "gw_access=t.o.k"),
        ]);
        assert_eq!(extract(&h, C), Ok(Some("t.o.k")));
        // Names are case-sensitive and exact.
        let h = headers(&[("cookie", "GW_ACCESS=x; gw_access_2=y")]);
        assert_eq!(extract(&h, C), Ok(None));
        // A cleared cookie is no token.
        let h = headers(&[("cookie", "gw_access=")]);
        assert_eq!(extract(&h, C), Ok(None));
        assert_eq!(extract(&HeaderMap::new(), C), Ok(None));
    }

    #[test]
    fn cookie_ambiguity_and_junk() {
        let h = headers(&[("cookie", "gw_access=a; gw_access=b")]);
        assert_eq!(extract(&h, C), Err(BearerError::Ambiguous));
        let h = headers(&[("cookie", "gw_access=a"), ("cookie", "gw_access=b")]);
        assert_eq!(extract(&h, C), Err(BearerError::Ambiguous));
        let h = headers(&[("cookie", "gw_access=a{b}")]);
        assert_eq!(extract(&h, C), Err(BearerError::Malformed));
    }

    #[test]
    fn header_and_cookie() {
        let same = headers(&[
            ("authorization", "Bearer t.o.k"),
            ("cookie", "gw_access=t.o.k"),
        ]);
        assert_eq!(extract(&same, C), Ok(Some("t.o.k")));
        let different = headers(&[
            ("authorization", "Bearer t.o.k"),
            ("cookie", "gw_access=o.t.h"),
        ]);
        assert_eq!(extract(&different, C), Err(BearerError::Ambiguous));
        // Without a configured cookie, the cookie is not a token at all.
        assert_eq!(extract(&different, None), Ok(Some("t.o.k")));
    }

    #[test]
    fn cookie_borne_only_without_a_header() {
        let cookie = headers(&[("cookie", "gw_access=t.o.k")]);
        assert!(cookie_borne(&cookie, C));
        assert!(!cookie_borne(&cookie, None));
        assert!(cookie_borne(&headers(&[("cookie", "gw_access=a{b}")]), C));
        let both = headers(&[
            ("authorization", "Bearer t.o.k"),
            ("cookie", "gw_access=t.o.k"),
        ]);
        assert!(!cookie_borne(&both, C));
        assert!(!cookie_borne(&headers(&[("cookie", "other=1")]), C));
        assert!(!cookie_borne(&HeaderMap::new(), C));
    }

    #[test]
    fn strip_removes_only_the_token() {
        let mut h = headers(&[
            ("authorization", "Bearer t"),
            ("cookie", "a=1; gw_access=t; b=2"),
            ("cookie", "gw_access=t"),
            ("cookie", "c=3"),
            ("x-other", "kept"),
        ]);
        strip_token(&mut h, C);
        assert!(h.get(AUTHORIZATION).is_none());
        let cookies: Vec<_> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["a=1; b=2", "c=3"]);
        assert_eq!(h["x-other"], "kept");

        let mut h = headers(&[("cookie", "a=1; gw_access_x=2")]);
        strip_token(&mut h, C);
        assert_eq!(h[COOKIE], "a=1; gw_access_x=2");

        let mut h = headers(&[("authorization", "Bearer t"), ("cookie", "gw_access=t")]);
        strip_token(&mut h, None);
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(h[COOKIE], "gw_access=t");
    }
}
