//! One `Host` (or HTTP/2 `:authority`) value, checked against RFC 9110's
//! `uri-host [ ":" port ]`, so that a value some component would read as several hosts, as
//! credentials or as a path (`a, b`, `user@a`, `a/path`) is refused before anything routes on
//! it. Never panics, whatever the input (a fuzz target calls [`parse`]).
//!
//! Stricter than RFC 3986 on purpose: a reg-name is letters, digits, `-`, `.`, `_` and `~`
//! only. The grammar also allows percent-escapes and sub-delims (`,`, `;`, `!`, ...), which no
//! DNS name contains and which a backend may split or decode differently.

use std::net::Ipv6Addr;

/// The longest host accepted (a DNS name is at most 253 characters; a bracketed IPv6 literal
/// with a zone is shorter still).
const MAX_HOST: usize = 253;

/// A valid host and its optional port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    /// As written: a reg-name or IPv4 address, or an IPv6 literal with its brackets.
    pub name: &'a str,
    pub port: Option<u16>,
}

/// Why a value is not one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the host is empty")]
    Empty,
    #[error("the host is longer than {MAX_HOST} characters")]
    TooLong,
    #[error("the host contains a character no host name has")]
    BadCharacter,
    #[error("the IPv6 literal is not valid")]
    BadIpLiteral,
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
}

/// The one host of a request, as sent: HTTP/1 needs exactly one `Host` header (and an
/// absolute-form target must agree with it); HTTP/2 has `:authority`, and a `Host` beside it
/// must agree. It must be one valid host ([`parse`]). `None`: the request gets 400.
pub fn of_request<B>(req: &http::Request<B>) -> Option<String> {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return None;
    }
    let header = match header {
        Some(v) => Some(v.to_str().ok()?),
        None => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    let host = match (header, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => return None,
        (Some(h), _) => h,
        (None, Some(a)) if req.version() == http::Version::HTTP_2 => a,
        _ => return None,
    };
    // One `uri-host [":" port]` (an authority beside it is the same, above): not a list,
    // userinfo, a path, a bad port or spaces.
    parse(host).ok()?;
    Some(host.to_owned())
}

/// Parses `uri-host [ ":" port ]`.
pub fn parse(s: &str) -> Result<Host<'_>, HostError> {
    let (name, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or(HostError::BadIpLiteral)?;
        let (literal, rest) = s.split_at(end + 1);
        let inner = literal
            .get(1..literal.len() - 1)
            .ok_or(HostError::BadIpLiteral)?;
        // IPv6 only: no zone id (`%25eth0`), no IPvFuture (`v1.x`).
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| HostError::BadIpLiteral)?;
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or(HostError::BadCharacter)?),
        };
        (literal, port)
    } else {
        match s.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        }
    };
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_HOST {
        return Err(HostError::TooLong);
    }
    if !name.starts_with('[')
        && !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(HostError::BadCharacter);
    }
    // No empty label but the root one: `.`, `..`, `a..` and `.a` name nothing (routing would
    // read them as no host at all).
    if !name.starts_with('[')
        && name
            .strip_suffix('.')
            .unwrap_or(name)
            .split('.')
            .any(str::is_empty)
    {
        return Err(HostError::BadCharacter);
    }
    let port = port.map(parse_port).transpose()?;
    Ok(Host { name, port })
}

/// 1 to 5 digits, 1..=65535 (a second ':' in a reg-name ends up here and fails).
fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::BadPort),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_with_or_without_port() {
        for (s, name, port) in [
            ("example.com", "example.com", None),
            ("Example.COM:8443", "Example.COM", Some(8443)),
            ("example.com.", "example.com.", None),
            ("127.0.0.1:443", "127.0.0.1", Some(443)),
            ("[::1]", "[::1]", None),
            ("[2001:db8::1]:65535", "[2001:db8::1]", Some(65535)),
            ("a_b~c-d", "a_b~c-d", None),
            ("localhost:00080", "localhost", Some(80)),
        ] {
            assert_eq!(parse(s), Ok(Host { name, port }), "{s}");
        }
    }

    #[test]
    fn empty_labels_are_refused() {
        for s in [".", "..", "a..", ".a", "a..b", ".:80"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn lists_userinfo_paths_and_spaces_are_refused() {
        for s in [
            "a, b",
            "a,b",
            "user@a",
            "user:pw@a:443",
            "a/path",
            "a?x",
            "a#x",
            " a",
            "a ",
            "a b",
            "a%2eb",
            "a\\b",
            "a;b",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn bad_ports_and_literals() {
        for (s, want) in [
            ("a:", HostError::BadPort),
            ("a:0", HostError::BadPort),
            ("a:65536", HostError::BadPort),
            ("a:123456", HostError::BadPort),
            ("a:-1", HostError::BadPort),
            ("a:80:80", HostError::BadPort),
            ("a:http", HostError::BadPort),
            ("", HostError::Empty),
            (":80", HostError::Empty),
            ("[::1", HostError::BadIpLiteral),
            ("[]", HostError::BadIpLiteral),
            ("[v1.x]", HostError::BadIpLiteral),
            ("[fe80::1%25eth0]", HostError::BadIpLiteral),
            ("[1.2.3.4]", HostError::BadIpLiteral),
            ("[::1]x", HostError::BadCharacter),
            ("[::1]:", HostError::BadPort),
        ] {
            assert_eq!(parse(s), Err(want), "{s:?}");
        }
        assert_eq!(parse(&"a".repeat(254)), Err(HostError::TooLong));
    }

    #[test]
    fn never_panics_on_mutated_hosts() {
        let alphabet: Vec<char> = "a1-._~:[]@/?#%, \\\u{e9}\u{ff0e}".chars().collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            if let Ok(h) = parse(&s) {
                assert!(!h.name.is_empty() && s.starts_with(h.name), "{s:?}");
            }
        }
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for s in [
            "[", "]", "[]:", "[:", "::::", "[\u{e9}]", "\u{e9}:1", "[]]", "][",
        ] {
            let _ = parse(s);
        }
    }
}
