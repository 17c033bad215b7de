//! The one rule for URLs the gateway calls or trusts (a JWKS, an OpenID provider and the
//! endpoints its discovery document names, an OTLP collector): `https://`, or plain `http://`
//! to a loopback host only, and no credentials in the URL.

use std::net::{Ipv4Addr, Ipv6Addr};

/// `Err(reason)` when `uri` breaks the rule.
pub fn check(uri: &http::Uri) -> Result<(), String> {
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        _ if host.is_empty() => Err("the URL has no host".to_owned()),
        _ if uri.authority().is_some_and(|a| a.as_str().contains('@')) => {
            Err("credentials in the URL are not supported".to_owned())
        }
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "plain http:// is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https:// for {host}"
        )),
        _ => Err(format!("expected an https:// URL, got \"{uri}\"")),
    }
}

/// 127.0.0.0/8, ::1 (bracketed, as in a URL) or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    inner
        .and_then(|h| h.parse::<Ipv6Addr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_http() {
        let ok = |s: &str| check(&s.parse().unwrap()).is_ok();
        assert!(ok("https://idp.example.com/x"));
        assert!(ok("http://127.0.0.1:9/x"));
        assert!(ok("http://[::1]:9/x"));
        assert!(ok("http://localhost/x"));
        assert!(!ok("http://10.0.0.1/x"));
        assert!(!ok("https://u:p@idp.example.com/"));
        assert!(!ok("ftp://idp.example.com/"));
        assert!(!ok("/relative"));
    }
}
