//! `gateway::auth::bearer::{extract, strip_token}` on header maps built from the input.
//!
//! Input, as text lines: the first line is the configured token cookie name (empty: no
//! cookie configured); every further line is one header `name: value` (lines whose name or
//! value is not a valid header are skipped, as hyper would have refused them).
//!
//! Properties: a token found is one RFC 6750 b64token and is what the single `Authorization:
//! Bearer` header or the named cookie holds; two `Authorization` headers are ambiguous; after
//! `strip_token` no token is left, every other header and every other cookie pair is kept,
//! and stripping again changes nothing.
#![no_main]

use gateway::auth::bearer::{extract, strip_token, BearerError};
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let Ok(cookie_name) = std::str::from_utf8(first) else {
        return;
    };
    let cookie = (!cookie_name.is_empty()).then_some(cookie_name);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii_start());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }

    let found = extract(&headers, cookie);
    assert_eq!(found, extract(&headers, cookie), "not deterministic");
    if headers.get_all(AUTHORIZATION).iter().count() > 1 {
        assert_eq!(found, Err(BearerError::Ambiguous));
    }
    if let Ok(Some(token)) = &found {
        assert!(is_b64token(token), "{token:?}");
        let from_header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let in_header = from_header
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(_, t)| t == token);
        let in_cookie = cookie.is_some_and(|name| {
            cookie_pairs(&headers)
                .iter()
                .any(|(n, v)| n == name.as_bytes() && unquote(v) == token.as_bytes())
        });
        assert!(in_header || in_cookie, "{token:?} came from nowhere");
    }

    let mut stripped = headers.clone();
    strip_token(&mut stripped, cookie);
    assert!(stripped.get(AUTHORIZATION).is_none());
    assert_eq!(extract(&stripped, cookie), Ok(None), "a token survived");
    // By name: a HeaderMap keeps the order of the values of one name, not across names.
    let others = |h: &HeaderMap| -> Vec<(HeaderName, HeaderValue)> {
        let mut v: Vec<_> = h
            .iter()
            .filter(|(n, _)| **n != AUTHORIZATION && **n != COOKIE)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        v
    };
    assert_eq!(others(&headers), others(&stripped), "other headers changed");
    match cookie {
        None => assert_eq!(
            headers.get_all(COOKIE).iter().collect::<Vec<_>>(),
            stripped.get_all(COOKIE).iter().collect::<Vec<_>>(),
            "cookies touched without a token cookie"
        ),
        Some(name) => {
            let kept = |h: &HeaderMap| -> Vec<(Vec<u8>, Vec<u8>)> {
                cookie_pairs(h)
                    .into_iter()
                    .filter(|(n, _)| n != name.as_bytes())
                    .collect()
            };
            assert_eq!(kept(&headers), kept(&stripped), "other cookies changed");
        }
    }
    let mut again = stripped.clone();
    strip_token(&mut again, cookie);
    assert_eq!(again, stripped, "strip_token is not idempotent");
});

/// Every `name=value` pair of every Cookie header, trimmed (RFC 6265 section 5.4 shape).
fn cookie_pairs(h: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    h.get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            Some((
                pair[..eq].trim_ascii().to_vec(),
                pair[eq + 1..].trim_ascii().to_vec(),
            ))
        })
        .collect()
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}
