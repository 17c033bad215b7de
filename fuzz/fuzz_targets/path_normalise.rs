//! `gateway::http::path::normalise` on any string: never panics, and what it accepts is canonical.
//!
//! Properties of an accepted path: absolute, ASCII, no empty segment (`//`), no `.`/`..`
//! segment, no `;`, backslash or control byte, every escape upper-case hex of a byte that must
//! stay escaped (never an unreserved character, `/`, `\` or a control byte), and normalising it
//! again gives it back unchanged (one canonical spelling).
#![no_main]

use gateway::http::path::normalise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Paths reach the gateway as `&str` (hyper's URI); non-UTF-8 bytes cannot arrive.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalise(raw) else {
        return;
    };
    check_canonical(raw, &path);
    assert_eq!(
        normalise(&path).as_deref(),
        Ok(path.as_str()),
        "not idempotent: {raw:?} -> {path:?}"
    );
    // A path that survived normalisation also survives as the upstream request target.
    assert!(
        path.parse::<http::Uri>().is_ok(),
        "not a valid request target: {raw:?} -> {path:?}"
    );
});

fn check_canonical(raw: &str, path: &str) {
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(path.is_ascii(), "{raw:?} -> {path:?}");
    assert!(!path.contains("//"), "{raw:?} -> {path:?}");
    assert!(!path.contains(';'), "{raw:?} -> {path:?}");
    assert!(!path.contains('\\'), "{raw:?} -> {path:?}");
    assert!(
        !path.bytes().any(|b| b < 0x20 || b == 0x7f),
        "{raw:?} -> {path:?}"
    );
    for segment in path.split('/') {
        assert!(segment != "." && segment != "..", "{raw:?} -> {path:?}");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .unwrap_or_else(|| panic!("truncated escape: {raw:?} -> {path:?}"));
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "escape not upper-case hex: {raw:?} -> {path:?}"
            );
            let byte = u8::from_str_radix(hex, 16).expect("checked hex");
            let unreserved = byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
            assert!(
                !unreserved && !b"/\\;".contains(&byte) && byte >= 0x20 && byte != 0x7f,
                "escape of {byte:#04x} kept: {raw:?} -> {path:?}"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
}
