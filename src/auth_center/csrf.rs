//! Two checks that keep other sites' pages from driving the auth center through a visitor's
//! browser (docs/contract.md, "The auth center"). A cross-site page can make a browser send a form or
//! `text/plain` body without asking anyone (login CSRF), but never one declared
//! `application/json`: so bodies must be declared JSON (415 otherwise). And a browser attaches
//! the gateway's cookies by itself: so a call authenticated by a cookie that names another
//! `Origin` is refused (403), whatever the cookies' `SameSite` says.

use http::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use http::Request;

use crate::error::GatewayError;

/// What a request declares its body to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Declared {
    /// `Content-Type: application/json`.
    Json,
    /// No `Content-Type`: only an empty body is acceptable (logout, a cookie-only refresh).
    Nothing,
}

/// `Declared::Json` for `application/json` (any case, parameters such as `; charset=utf-8`
/// allowed), `Declared::Nothing` without the header; 415 for anything else (another type, a
/// form, `text/plain`, `application/json-seq`, the header twice).
pub(super) fn content_type(headers: &HeaderMap) -> Result<Declared, GatewayError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (value, None) = (values.next(), values.next()) else {
        return Err(GatewayError::UnsupportedMediaType);
    };
    let Some(value) = value else {
        return Ok(Declared::Nothing);
    };
    let value = value
        .to_str()
        .map_err(|_| GatewayError::UnsupportedMediaType)?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(Declared::Json)
    } else {
        Err(GatewayError::UnsupportedMediaType)
    }
}

/// 403 when the request names an `Origin` that is not the gateway's own. The gateway's own
/// origin is `https://` and the request's host as sent (`Host`, else `:authority`), port
/// kept; `:443` and no port are the same (browsers leave the default port out of `Origin`).
/// `Origin: null`, an `http://` origin, a path, two `Origin` headers: not own. A request
/// without `Origin` passes (non-browser clients; browsers send it on every cross-site POST).
pub(super) fn same_origin<B>(req: &Request<B>) -> Result<(), GatewayError> {
    let mut origins = req.headers().get_all(ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => return Ok(()),
        (Some(o), None) => o.to_str().ok(),
        (Some(_), Some(_)) => None,
    };
    let own = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match (origin.and_then(origin_authority), own) {
        (Some(o), Some(h)) if normalise(o) == normalise(h) => Ok(()),
        _ => Err(GatewayError::OriginMismatch),
    }
}

/// The `host[:port]` of an `https://host[:port]` origin; `None` for anything else.
fn origin_authority(origin: &str) -> Option<&str> {
    let scheme = origin.get(..8)?;
    let rest = &origin[8..];
    let plain = !rest.is_empty()
        && !rest
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || b <= b' ');
    (scheme.eq_ignore_ascii_case("https://") && plain).then_some(rest)
}

/// Lower case, without a default `:443`.
fn normalise(authority: &str) -> String {
    let a = authority.to_ascii_lowercase();
    match a.strip_suffix(":443") {
        Some(host) => host.to_owned(),
        None => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &[&str]) -> Result<Declared, GatewayError> {
        let mut h = HeaderMap::new();
        for v in v {
            h.append(CONTENT_TYPE, v.parse().unwrap());
        }
        content_type(&h)
    }

    #[test]
    fn only_json_or_nothing() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            assert_eq!(ct(&[ok]).unwrap(), Declared::Json, "{ok}");
        }
        assert_eq!(ct(&[]).unwrap(), Declared::Nothing);
        for bad in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json-seq",
            "application/jsonx",
            "",
        ] {
            assert!(
                matches!(ct(&[bad]), Err(GatewayError::UnsupportedMediaType)),
                "{bad}"
            );
        }
        assert!(ct(&["application/json", "application/json"]).is_err());
    }

    fn req(host: Option<&str>, uri: &str, origins: &[&str]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        for o in origins {
            b = b.header(ORIGIN, *o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn own_origin_is_https_and_the_host_as_sent() {
        let ok = |host: &str, origin: &str| same_origin(&req(Some(host), "/", &[origin])).is_ok();
        assert!(ok("gw.example", "https://gw.example"));
        assert!(ok("GW.example", "https://gw.EXAMPLE"));
        assert!(ok("gw.example:8443", "https://gw.example:8443"));
        assert!(ok("gw.example", "https://gw.example:443"));
        assert!(ok("gw.example:443", "https://gw.example"));
        assert!(ok("[::1]:8443", "https://[::1]:8443"));
        for foreign in [
            "https://evil.example",
            "http://gw.example",
            "https://gw.example:8443",
            "https://gw.example.evil.example",
            "https://gw.example/",
            "https://user@gw.example",
            "null",
            "",
        ] {
            assert!(!ok("gw.example", foreign), "{foreign}");
        }
        assert!(!ok("gw.example:8443", "https://gw.example"));
        // No Origin: passes; two: refused.
        assert!(same_origin(&req(Some("gw.example"), "/", &[])).is_ok());
        let two = req(
            Some("gw.example"),
            "/",
            &["https://gw.example", "https://gw.example"],
        );
        assert!(same_origin(&two).is_err());
        // HTTP/2: the authority of the target.
        let h2 = req(
            None,
            "https://gw.example/auth/logout",
            &["https://gw.example"],
        );
        assert!(same_origin(&h2).is_ok());
    }
}
