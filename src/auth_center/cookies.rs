//! The auth center's cookies (with `auth.cookies = true`): the access token in the cookie the
//! pipeline reads (`jwt.cookie`; `__Host-` prefixed where configured so, since it is
//! `Path=/`), and the refresh token in `__Secure-gw_refresh`, scoped to `auth.path` so it is
//! only ever sent to the auth center. With a device id (always with `bind_refresh =
//! "device"`), the device cookie `__Host-gw_device` too, which `/refresh` reads when the body
//! names no device. All `HttpOnly; Secure; SameSite=Strict`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;

use crate::config::AuthCenter;

/// The refresh cookie's name. `__Secure-` rather than `__Host-`: it has a narrower path.
pub const REFRESH_COOKIE: &str = "__Secure-gw_refresh";

/// The device cookie's name: `__Host-` (Path=/, no Domain, Secure), so no subdomain or plain
/// HTTP page can plant one. Its value is the device id, base64url-encoded (a device id a
/// client chose may hold characters a cookie cannot).
pub const DEVICE_COOKIE: &str = "__Host-gw_device";

/// The cookie that binds an OpenID login to the browser that began it (its value names the
/// login's server-side state). `SameSite=Lax`, the one cookie here that is not `Strict`: the
/// provider's redirect back is a cross-site top-level GET, which `Lax` lets through and
/// `Strict` would not; it carries no authority of its own (only the state it names, once).
pub const LOGIN_COOKIE: &str = "__Host-gw_oidc";

/// `Set-Cookie` for an OpenID login's binding cookie (`max_age` 0 expires it).
pub(super) fn login_cookie(id: &str, max_age: u64) -> Option<HeaderValue> {
    let v =
        format!("{LOGIN_COOKIE}={id}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax");
    HeaderValue::from_str(&v).ok()
}

/// The OpenID login cookie's value, when the request carries exactly one.
pub(super) fn login_from(headers: &HeaderMap) -> Result<Option<String>, ()> {
    one_cookie(headers, LOGIN_COOKIE)
}

/// What to set, or `None` inside when cookies are off.
pub(super) struct Cookies {
    enabled: bool,
    /// `None`: no `jwt.cookie`, so the pipeline would not read an access cookie: none is set.
    access: Option<String>,
    refresh_path: String,
}

impl Cookies {
    pub(super) fn new(cfg: &AuthCenter, jwt_cookie: Option<&str>) -> Cookies {
        if cfg.cookies {
            match jwt_cookie {
                None => tracing::warn!(
                    "auth.cookies = true but jwt.cookie is not set: only the refresh cookie is set"
                ),
                Some(name) if !name.starts_with("__Host-") => tracing::warn!(
                    cookie = name,
                    "the access cookie has no __Host- prefix; set jwt.cookie = \"__Host-{name}\""
                ),
                Some(_) => {}
            }
        }
        Cookies {
            enabled: cfg.cookies,
            access: jwt_cookie.map(str::to_owned),
            refresh_path: cfg.path.clone(),
        }
    }

    /// `Set-Cookie` values for a new pair.
    pub(super) fn issue(
        &self,
        access: &str,
        access_ttl: Duration,
        refresh: &str,
        refresh_ttl: Duration,
    ) -> Vec<HeaderValue> {
        if !self.enabled {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2);
        if let Some(name) = &self.access {
            out.extend(cookie(name, access, "/", access_ttl.as_secs()));
        }
        out.extend(cookie(
            REFRESH_COOKIE,
            refresh,
            &self.refresh_path,
            refresh_ttl.as_secs(),
        ));
        out
    }

    /// The device cookie for a login bound to `device_id`, living as long as the session.
    pub(super) fn device(&self, device_id: &str, ttl: Duration) -> Option<HeaderValue> {
        if !self.enabled {
            return None;
        }
        let value = URL_SAFE_NO_PAD.encode(device_id.as_bytes());
        cookie(DEVICE_COOKIE, &value, "/", ttl.as_secs())
    }

    /// `Set-Cookie` values that expire every cookie (logout). Sent even when cookies are off,
    /// so turning them off does not strand old ones.
    pub(super) fn expire(&self) -> Vec<HeaderValue> {
        let mut out = Vec::with_capacity(3);
        if let Some(name) = &self.access {
            out.extend(cookie(name, "", "/", 0));
        }
        out.extend(cookie(REFRESH_COOKIE, "", &self.refresh_path, 0));
        out.extend(cookie(DEVICE_COOKIE, "", "/", 0));
        out
    }
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64) -> Option<HeaderValue> {
    let v = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    );
    // Names, paths and tokens are all header-safe by construction; a failure drops the cookie.
    HeaderValue::from_str(&v).ok()
}

/// The refresh cookie's value, when the request carries exactly one non-empty value of it.
pub(super) fn refresh_from(headers: &HeaderMap) -> Result<Option<String>, ()> {
    one_cookie(headers, REFRESH_COOKIE)
}

/// The device id in the device cookie. `Err` for two different values, or one that does not
/// decode (such a refresh names no device it could be bound to).
pub(super) fn device_from(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(raw) = one_cookie(headers, DEVICE_COOKIE)? else {
        return Ok(None);
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| ())?;
    String::from_utf8(bytes).map(Some).map_err(|_| ())
}

/// The value of the cookie `name`, when the request carries exactly one non-empty value of it.
fn one_cookie(headers: &HeaderMap, name: &str) -> Result<Option<String>, ()> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(COOKIE) {
        // Split as bytes: another cookie's non-ASCII value must not hide ours.
        for pair in value.as_bytes().split(|b| *b == b';') {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii_end());
            if n != name.as_bytes() || v.is_empty() {
                continue;
            }
            let Ok(v) = std::str::from_utf8(v) else {
                continue;
            };
            match found {
                Some(prev) if prev != v => return Err(()),
                _ => found = Some(v),
            }
        }
    }
    Ok(found.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_cookies_non_ascii_value_does_not_hide_ours() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_bytes("pref=caf\u{e9}; __Host-gw_oidc=abc ".as_bytes()).unwrap(),
        );
        assert_eq!(login_from(&h), Ok(Some("abc".to_owned())));
    }

    fn cfg(cookies: bool) -> AuthCenter {
        AuthCenter {
            path: "/auth".into(),
            signing_key: crate::config::SigningKey::Secret {
                env: "X".into(),
                value: b"x".to_vec(),
            },
            signing_kid: "k1".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(604800),
            refresh_max_uses: 10,
            bind_refresh: crate::config::BindRefresh::Device,
            refresh_grace: Duration::ZERO,
            registration: false,
            cookies,
        }
    }

    #[test]
    fn issued_cookies_have_every_attribute() {
        let c = Cookies::new(&cfg(true), Some("__Host-gw_access"));
        let set = c.issue(
            "AT",
            Duration::from_secs(900),
            "RT",
            Duration::from_secs(60),
        );
        assert_eq!(
            set[0],
            "__Host-gw_access=AT; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Strict"
        );
        assert_eq!(
            set[1],
            "__Secure-gw_refresh=RT; Path=/auth; Max-Age=60; HttpOnly; Secure; SameSite=Strict"
        );
        let gone = c.expire();
        assert!(gone
            .iter()
            .all(|v| v.to_str().unwrap().contains("=; Path=")));
        assert!(gone
            .iter()
            .all(|v| v.to_str().unwrap().contains("Max-Age=0")));
        let off = Cookies::new(&cfg(false), Some("a"));
        assert!(off
            .issue("a", Duration::ZERO, "b", Duration::ZERO)
            .is_empty());
        assert_eq!(off.expire().len(), 3);
        assert!(off.device("d", Duration::ZERO).is_none());
    }

    #[test]
    fn the_device_cookie_is_host_prefixed_and_round_trips() {
        let c = Cookies::new(&cfg(true), None);
        let set = c.device("my laptop; x", Duration::from_secs(60)).unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-gw_device="), "{set}");
        assert!(set.ends_with("; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict"));
        assert!(!set.contains("Domain"));
        let value = set.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_str(value).unwrap());
        assert_eq!(device_from(&h).unwrap().as_deref(), Some("my laptop; x"));
        h.append(COOKIE, HeaderValue::from_static("__Host-gw_device=b3RoZXI"));
        assert!(device_from(&h).is_err(), "two devices");
        let mut bad = HeaderMap::new();
        bad.append(COOKIE, HeaderValue::from_static("__Host-gw_device=***"));
        assert!(device_from(&bad).is_err());
        assert_eq!(device_from(&HeaderMap::new()).unwrap(), None);
        assert!(c.expire().iter().any(|v| v
            .to_str()
            .unwrap()
            .starts_with("__Host-gw_device=; Path=/; Max-Age=0")));
    }

    #[test]
    fn refresh_cookie_is_read_once() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Secure-gw_refresh=RT"),
        );
        assert_eq!(refresh_from(&h).unwrap().as_deref(), Some("RT"));
        h.append(COOKIE, HeaderValue::from_static("__Secure-gw_refresh=RT"));
        assert_eq!(refresh_from(&h).unwrap().as_deref(), Some("RT"));
        h.append(
            COOKIE,
            HeaderValue::from_static("__Secure-gw_refresh=OTHER"),
        );
        assert!(refresh_from(&h).is_err());
        assert_eq!(refresh_from(&HeaderMap::new()).unwrap(), None);
    }
}
