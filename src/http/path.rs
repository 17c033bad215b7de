//! Request path normalisation: one canonical spelling for routing, authorisation and forwarding.
//!
//! Proxies have been bypassed again and again by authorising one spelling of a path and
//! forwarding another (`/admin` vs `/%61dmin` vs `/x/../admin` vs `/x/..;/admin`). [`normalise`]
//! turns the path of a request target into the one spelling that the route table matches,
//! the authorisation decision is taken on, and the upstream receives. Anything that stays
//! ambiguous after normalisation (an encoded `/` or `\`, control bytes, `..` above the root,
//! a segment that a Tomcat, Jetty or Windows backend would read as a dot segment, invalid
//! UTF-8) is refused instead of guessed at.
//!
//! The canonical form:
//! - starts with `/`; empty segments are collapsed (`//a///b` is `/a/b`);
//! - escapes of unreserved characters (ALPHA DIGIT `-` `.` `_` `~`) are decoded, every other
//!   escape is kept with upper-case hex (`%2f` is refused, `%2520` stays);
//! - a `;` (raw or `%3B`) is refused: backends disagree on path parameters;
//! - raw characters that may not appear in a path (space, `"`, `<`, `{`, non-ASCII, ...) are
//!   percent-encoded, so the result is plain ASCII;
//! - `.` and `..` segments are resolved as in RFC 3986 5.2.4, whatever their spelling;
//! - a trailing `/` is kept, and a path ending in a dot segment ends in `/` (`/a/b/..` is `/a/`).

use thiserror::Error;

/// Why a path was refused. Every variant is a client error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the path contains a malformed percent escape")]
    InvalidEscape,
    #[error("the path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a control character")]
    ControlCharacter,
    #[error("the path climbs above the root with '..'")]
    AboveRoot,
    /// `..;x` (Tomcat, Jetty) or `.. ` / `...` (Windows trims trailing dots and spaces).
    #[error("the path has a segment that a backend may read as '.' or '..'")]
    AmbiguousDotSegment,
    #[error("the path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    /// Path parameters (`/admin;x/secret`): Tomcat and Jetty drop them and serve `/admin/secret`,
    /// so a route table that saw `admin;x` would have authorised the wrong path.
    #[error("the path contains ';' (path parameters are refused)")]
    Semicolon,
}

/// Returns the canonical form of `raw`, the path part of a request target (no query).
///
/// See the module documentation for the rules. The result is what routing matches and what
/// the upstream receives.
pub fn normalise(raw: &str) -> Result<String, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(raw.len());
    // Only allocated when a segment holds non-ASCII bytes and must be checked for UTF-8.
    let mut scratch = Vec::new();
    let mut trailing_slash = false;

    for segment in rest.split('/') {
        let start = out.len();
        out.push('/');
        let needs_utf8_check = push_canonical_segment(&mut out, segment)?;
        let canonical = &out[start + 1..];
        if needs_utf8_check {
            check_utf8(canonical, &mut scratch)?;
        }
        match canonical {
            "" | "." => {
                out.truncate(start);
                trailing_slash = true;
            }
            ".." => {
                out.truncate(start);
                let parent = out.rfind('/').ok_or(PathError::AboveRoot)?;
                out.truncate(parent);
                trailing_slash = true;
            }
            _ => {
                if is_ambiguous_dot_segment(canonical) {
                    return Err(PathError::AmbiguousDotSegment);
                }
                if canonical.contains(';') || canonical.contains("%3B") {
                    return Err(PathError::Semicolon);
                }
                if has_separator_lookalike(canonical) {
                    return Err(PathError::EncodedSeparator);
                }
                trailing_slash = false;
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Appends the canonical spelling of one raw segment (no '/' in it) to `out`. Returns whether
/// the segment holds bytes above 0x7F (encoded), which must then be checked for UTF-8.
fn push_canonical_segment(out: &mut String, segment: &str) -> Result<bool, PathError> {
    let bytes = segment.as_bytes();
    let mut non_ascii = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
            let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::InvalidEscape);
            };
            let decoded = (hi << 4) | lo;
            match decoded {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                _ if is_control(decoded) => return Err(PathError::ControlCharacter),
                _ if is_unreserved(decoded) => out.push(char::from(decoded)),
                _ => {
                    non_ascii |= decoded >= 0x80;
                    push_escape(out, decoded);
                }
            }
            i += 3;
        } else {
            match b {
                b'\\' => return Err(PathError::Backslash),
                _ if is_control(b) => return Err(PathError::ControlCharacter),
                _ if is_pchar_literal(b) => out.push(char::from(b)),
                _ => {
                    // Non-ASCII bytes of a UTF-8 character, or ASCII not allowed in a path.
                    non_ascii |= b >= 0x80;
                    push_escape(out, b);
                }
            }
            i += 1;
        }
    }
    Ok(non_ascii)
}

/// Decodes a canonical segment (ASCII, only non-unreserved bytes escaped) and checks that the
/// bytes are UTF-8. std's check refuses overlong forms (`%C0%AE`), surrogates and code points
/// above U+10FFFF.
fn check_utf8(canonical: &str, scratch: &mut Vec<u8>) -> Result<(), PathError> {
    scratch.clear();
    let bytes = canonical.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Invariant: `canonical` was written by `push_escape`, so two hex digits follow.
            let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
            let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::InvalidEscape);
            };
            scratch.push((hi << 4) | lo);
            i += 3;
        } else {
            scratch.push(bytes[i]);
            i += 1;
        }
    }
    std::str::from_utf8(scratch).map_err(|_| PathError::InvalidUtf8)?;
    Ok(())
}

/// Whether a segment other than `.` and `..` could still be read as one by some backend:
/// - Tomcat and Jetty strip `;parameters` before resolving dot segments, so they read `..;x`
///   (and `..%3Bx` after their own decoding) as `..`;
/// - Windows trims trailing dots and spaces from path components, so an IIS or file-serving
///   backend may read `...`, `.. ` or `. .` as a dot segment.
///
/// - a backend that applies Unicode NFKC (Python, Java normalisers) reads the fullwidth dot
///   U+FF0E, the one-dot leader U+2024, the small full stop U+FE52, and the leaders U+2025 and
///   U+2026 as dots.
///
/// A segment made only of dots, dot lookalikes and spaces (encoded), before any `;`, is refused.
fn is_ambiguous_dot_segment(canonical: &str) -> bool {
    /// Percent-encoded UTF-8 of the characters NFKC turns into `.`, `..` or `...`.
    const LOOKALIKES: [&str; 5] = [
        "%EF%BC%8E", // U+FF0E FULLWIDTH FULL STOP
        "%E2%80%A4", // U+2024 ONE DOT LEADER
        "%EF%B9%92", // U+FE52 SMALL FULL STOP
        "%E2%80%A5", // U+2025 TWO DOT LEADER
        "%E2%80%A6", // U+2026 HORIZONTAL ELLIPSIS
    ];
    if canonical.contains("%E2%80%A") || canonical.contains("%EF%B") {
        let mut plain = canonical.to_owned();
        for l in LOOKALIKES {
            plain = plain.replace(l, ".");
        }
        if plain != canonical {
            return is_ambiguous_plain(&plain);
        }
    }
    is_ambiguous_plain(canonical)
}

/// Characters that NFKC turns into `/` or `\`: U+FF0F FULLWIDTH SOLIDUS, U+FF3C FULLWIDTH
/// REVERSE SOLIDUS, U+FE68 SMALL REVERSE SOLIDUS (percent-encoded, as in the canonical form).
fn has_separator_lookalike(canonical: &str) -> bool {
    ["%EF%BC%8F", "%EF%BC%BC", "%EF%B9%A8"]
        .iter()
        .any(|l| canonical.contains(l))
}

fn is_ambiguous_plain(canonical: &str) -> bool {
    let semi = canonical.find(';');
    let encoded = canonical.find("%3B");
    let cut = match (semi, encoded) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => canonical.len(),
    };
    let name = &canonical[..cut];
    name.starts_with('.') && name.replace("%20", "").bytes().all(|b| b == b'.')
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

/// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may hold literally (RFC 3986 pchar minus pct-encoded).
fn is_pchar_literal(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathError::*;

    /// (raw, expected) for every rule in the module documentation.
    const CASES: &[(&str, Result<&str, PathError>)] = &[
        // Plain paths pass as they are.
        ("/", Ok("/")),
        ("/a", Ok("/a")),
        ("/a/b/", Ok("/a/b/")),
        ("/api/v1/users:batch@x", Ok("/api/v1/users:batch@x")),
        ("/a;b=c,d", Err(Semicolon)),
        ("/~user/file.txt", Ok("/~user/file.txt")),
        // Not absolute.
        ("", Err(NotAbsolute)),
        ("a/b", Err(NotAbsolute)),
        ("*", Err(NotAbsolute)),
        ("http://x/a", Err(NotAbsolute)),
        // Dot segments.
        ("/a/./b", Ok("/a/b")),
        ("/a/../b", Ok("/b")),
        ("/a/b/../../c", Ok("/c")),
        ("/a/..", Ok("/")),
        ("/a/b/..", Ok("/a/")),
        ("/a/.", Ok("/a/")),
        ("/.", Ok("/")),
        ("/./", Ok("/")),
        ("/..", Err(AboveRoot)),
        ("/../a", Err(AboveRoot)),
        ("/a/../..", Err(AboveRoot)),
        ("/a/../../b", Err(AboveRoot)),
        ("/a/..//../b", Err(AboveRoot)),
        ("/...", Err(AmbiguousDotSegment)),
        ("/a/.../b", Err(AmbiguousDotSegment)),
        ("/a/..%20/b", Err(AmbiguousDotSegment)),
        ("/a/.%20./b", Err(AmbiguousDotSegment)),
        ("/a/. /b", Err(AmbiguousDotSegment)),
        ("/a/.%2e%2e/b", Err(AmbiguousDotSegment)),
        ("/a/.x/b", Ok("/a/.x/b")),
        ("/.well-known/x", Ok("/.well-known/x")),
        ("/a/%20../b", Ok("/a/%20../b")),
        ("/a/;x/b", Err(Semicolon)),
        ("/..a/b..", Ok("/..a/b..")),
        // Encoded dots, any case and mix.
        ("/a/%2e%2E/b", Ok("/b")),
        ("/a/%2E/b", Ok("/a/b")),
        ("/a/.%2e/b", Ok("/b")),
        ("/a/%2e./b", Ok("/b")),
        ("/%2e%2e/x", Err(AboveRoot)),
        ("/%2E%2E", Err(AboveRoot)),
        ("/a%2eb", Ok("/a.b")),
        // Dot segments with ';' parameters (Tomcat, Jetty) or trailing dots and spaces (Windows).
        ("/a/..;/b", Err(AmbiguousDotSegment)),
        ("/a/..;x/b", Err(AmbiguousDotSegment)),
        ("/a/.;x/b", Err(AmbiguousDotSegment)),
        ("/%2e%2e;foo/x", Err(AmbiguousDotSegment)),
        ("/a/.%2e;/b", Err(AmbiguousDotSegment)),
        ("/a/..%3bx/b", Err(AmbiguousDotSegment)),
        ("/a/..x;y/b", Err(Semicolon)),
        ("/p/%EF%BC%8E%EF%BC%8E/admin", Err(AmbiguousDotSegment)),
        ("/p/%ef%bc%8e/admin", Err(AmbiguousDotSegment)),
        ("/p/\u{FF0E}\u{FF0E}/admin", Err(AmbiguousDotSegment)),
        ("/p/%E2%80%A4%E2%80%A4/x", Err(AmbiguousDotSegment)),
        ("/p/%EF%B9%92./x", Err(AmbiguousDotSegment)),
        ("/p/%E2%80%A5/x", Err(AmbiguousDotSegment)),
        ("/p/%E2%80%A6/x", Err(AmbiguousDotSegment)),
        ("/p/a%EF%BC%8E/x", Ok("/p/a%EF%BC%8E/x")),
        ("/p/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin", Err(EncodedSeparator)),
        ("/p/a%EF%BC%BCb", Err(EncodedSeparator)),
        ("/a;x/../b", Err(Semicolon)),
        // Encoded separators, backslash, NUL and control bytes.
        ("/a%2fb", Err(EncodedSeparator)),
        ("/a%2Fb", Err(EncodedSeparator)),
        ("/a%5cb", Err(EncodedSeparator)),
        ("/a%5C", Err(EncodedSeparator)),
        ("/a\\b", Err(Backslash)),
        ("/a%00", Err(ControlCharacter)),
        ("/a\0b", Err(ControlCharacter)),
        ("/a%0d%0aX-Evil:1", Err(ControlCharacter)),
        ("/a\tb", Err(ControlCharacter)),
        ("/a%7f", Err(ControlCharacter)),
        ("/a\u{7f}", Err(ControlCharacter)),
        // Malformed escapes.
        ("/a%zz", Err(InvalidEscape)),
        ("/a%", Err(InvalidEscape)),
        ("/a%4", Err(InvalidEscape)),
        ("/a%4/b", Err(InvalidEscape)),
        ("/a%%41", Err(InvalidEscape)),
        // Unreserved decoded, everything else kept with upper-case hex.
        ("/%41pi", Ok("/Api")),
        ("/a%7e", Ok("/a~")),
        ("/a%2d%5f%30", Ok("/a-_0")),
        ("/a%2520", Ok("/a%2520")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%3fb%23c", Ok("/a%3Fb%23c")),
        ("/a%3bb", Err(Semicolon)),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        // Raw characters a path may not hold are encoded.
        ("/a b", Ok("/a%20b")),
        ("/a{b}", Ok("/a%7Bb%7D")),
        ("/caf\u{e9}", Ok("/caf%C3%A9")),
        // Invalid or overlong UTF-8.
        ("/a%c0%ae%c0%ae/", Err(InvalidUtf8)),
        ("/%c0%af", Err(InvalidUtf8)),
        ("/%e0%80%ae", Err(InvalidUtf8)),
        ("/%ff", Err(InvalidUtf8)),
        ("/%c3", Err(InvalidUtf8)),
        ("/%ed%a0%80", Err(InvalidUtf8)),
        ("/%f4%90%80%80", Err(InvalidUtf8)),
        ("/%c3\u{e9}", Err(InvalidUtf8)),
        // Empty segments collapse; a trailing '/' is kept.
        ("//a///b/", Ok("/a/b/")),
        ("//", Ok("/")),
        ("///", Ok("/")),
        ("/a//", Ok("/a/")),
        ("//..", Err(AboveRoot)),
        ("/a//..//b", Ok("/b")),
    ];

    #[test]
    fn table() {
        let mut failures = Vec::new();
        for &(raw, expected) in CASES {
            let got = normalise(raw);
            if got.as_deref().map_err(|e| *e) != expected {
                failures.push(format!("{raw:?}: got {got:?}, want {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn output_is_a_fixed_point() {
        for &(raw, expected) in CASES {
            if let Ok(once) = expected {
                assert_eq!(normalise(once).as_deref(), Ok(once), "from {raw:?}");
            }
        }
    }

    #[test]
    fn output_is_ascii_and_never_holds_a_dot_segment() {
        for &(raw, _) in CASES {
            if let Ok(path) = normalise(raw) {
                assert!(path.is_ascii(), "{raw:?} -> {path:?}");
                assert!(path.starts_with('/'));
                assert!(!path.contains("//"), "{raw:?} -> {path:?}");
                for segment in path.split('/') {
                    assert!(segment != "." && segment != "..", "{raw:?} -> {path:?}");
                }
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // Every 1- and 2-byte tail after "/a" from an alphabet of the interesting characters.
        let alphabet = [
            '%', '2', 'e', 'E', 'f', '.', '/', ';', '\\', '\0', 'c', '0', 'é', 'Z',
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let raw = format!("/a{a}{b}{c}");
                    if let Ok(path) = normalise(&raw) {
                        assert_eq!(normalise(&path).as_deref(), Ok(path.as_str()), "{raw:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            EncodedSeparator.to_string(),
            "the path contains an encoded '/' or '\\'"
        );
        assert_eq!(
            AboveRoot.to_string(),
            "the path climbs above the root with '..'"
        );
    }
}
