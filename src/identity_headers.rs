//! Strip every client copy of the identity headers; set them only from `&Authenticated`.
//!
//! The upstream trusts `X-User-Id`, `X-User-Roles` and `X-Session-Id` (names configurable) only
//! because the gateway is the one writing them. So every request, public routes included,
//! first loses every copy of them in every spelling a backend might fold into the same name:
//! any case, duplicates, and the underscore form (`X_User_Id`), which CGI, WSGI and PHP read as
//! `HTTP_X_USER_ID` just like `X-User-Id` (oauth2-proxy CVE-2025-64484). Then, for an
//! authenticated request, [`set`] writes each one once, with `insert`, from values the auth
//! module produced; a value that could be read as something else is refused, never injected.
//!
//! The usual names (`X-User-Id`, `X-User-Roles`, `X-Session-Id`) are stripped too when
//! `[headers]` renames them (or leaves `session_id` out): a backend written for the usual
//! names, or one still reading them after a rename, must not believe a client's copy.
//!
//! Order in the pipeline: hop-by-hop removal (`Connection`-named headers), then
//! [`strip_inbound`], then [`set`].

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::auth::header_memo::HeaderMemo;
use crate::auth::Authenticated;
use crate::config::Headers;

/// The configured identity header names, with their folded spellings precomputed.
#[derive(Debug, Clone)]
pub struct IdentityNames {
    user_id: HeaderName,
    roles: HeaderName,
    session_id: Option<HeaderName>,
    /// Each name lower-case with '_' turned into '-': what a backend's folding makes of it.
    /// The configured names and the usual ones ([`USUAL`]), without duplicates.
    folded: Vec<Box<[u8]>>,
}

/// The identity headers' usual names, stripped from clients whatever `[headers]` says.
pub use crate::config::USUAL_IDENTITY_HEADERS as USUAL;

impl IdentityNames {
    pub fn new(headers: &Headers) -> Self {
        let names = [
            Some(&headers.user_id),
            Some(&headers.roles),
            headers.session_id.as_ref(),
        ];
        let mut folded: Vec<Box<[u8]>> = Vec::with_capacity(names.len() + USUAL.len());
        let configured = names.into_iter().flatten().map(HeaderName::as_str);
        for name in configured.chain(USUAL) {
            let f: Box<[u8]> = name.bytes().map(fold).collect();
            if !folded.contains(&f) {
                folded.push(f);
            }
        }
        IdentityNames {
            user_id: headers.user_id.clone(),
            roles: headers.roles.clone(),
            session_id: headers.session_id.clone(),
            folded,
        }
    }
}

impl IdentityNames {
    /// Also strips `extra` (the assertion header, every route's `claims_to_headers`) from
    /// every request, in every spelling, like the identity headers.
    pub fn with_extra<'a>(mut self, extra: impl IntoIterator<Item = &'a HeaderName>) -> Self {
        for name in extra {
            let f: Box<[u8]> = name.as_str().bytes().map(fold).collect();
            if !self.folded.contains(&f) {
                self.folded.push(f);
            }
        }
        self
    }

    /// For `config`: `[headers]`, the assertion header and every route's claim headers.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let claims = config
            .routes
            .iter()
            .flat_map(|r| r.claims_to_headers.iter().map(|(name, _)| name));
        IdentityNames::new(&config.headers)
            .with_extra(config.headers.assertion.iter().chain(claims))
    }
}

/// Writes `route`'s `claims_to_headers`, each from `who`'s claim when the token has one
/// (already stripped from the client by [`strip_inbound`]: [`IdentityNames::for_config`]).
/// A value that is not a header value is left out.
pub fn set_claims(headers: &mut HeaderMap, route: &crate::config::Route, who: &Authenticated) {
    for (name, claim) in &route.claims_to_headers {
        let value = who.claim(claim).and_then(|v| HeaderValue::from_str(v).ok());
        if let Some(value) = value {
            headers.insert(name.clone(), value);
        }
    }
}

impl From<&Headers> for IdentityNames {
    fn from(headers: &Headers) -> Self {
        IdentityNames::new(headers)
    }
}

/// What the upstream is told about the caller: read from an [`Authenticated`] only (see
/// [`set`]), so no module can inject an identity that was not verified.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct Identity<'a> {
    user_id: &'a str,
    roles: &'a [String],
    /// `None`: a token that needs no session; no session header is written.
    session_id: Option<&'a str>,
}

/// Which identity value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    UserId,
    Role,
    SessionId,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::UserId => "user id",
            Field::Role => "role",
            Field::SessionId => "session id",
        })
    }
}

/// Why an identity could not be written into headers. Nothing was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("the {0} is empty")]
    Empty(Field),
    #[error("the {0} contains a control character")]
    ControlCharacter(Field),
    #[error("the {0} starts or ends with whitespace")]
    SurroundingWhitespace(Field),
    #[error("a role contains ',', the roles header separator")]
    CommaInRole,
}

/// Removes every copy of every identity header in every spelling (see the module docs).
pub fn strip_inbound(headers: &mut HeaderMap, names: &IdentityNames) {
    // Nearly every request carries none: find that out without allocating.
    if !headers.keys().any(|name| looks_like_identity(name, names)) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| looks_like_identity(name, names))
        .cloned()
        .collect();
    for name in doomed {
        // `remove` drops every value stored under the name.
        headers.remove(name);
    }
}

/// Whether `name` is, or would be folded by a backend into, one of the identity headers.
/// Used on requests by [`strip_inbound`] and available for responses.
pub fn looks_like_identity(name: &HeaderName, names: &IdentityNames) -> bool {
    // `HeaderName` is always lower-case, so only '_' needs folding.
    let name = name.as_str().as_bytes();
    names
        .folded
        .iter()
        .any(|want| want.len() == name.len() && want.iter().zip(name).all(|(&w, &n)| w == fold(n)))
}

/// Writes the identity headers of an authenticated request: user id, roles joined with ','
/// (empty when there are none) and, when configured, the session id. Every spelling of them
/// already present is removed first, so exactly one copy of each leaves the gateway. On error
/// nothing is written (the client copies are still removed).
pub fn set(
    headers: &mut HeaderMap,
    names: &IdentityNames,
    who: &Authenticated,
) -> Result<(), IdentityError> {
    // Strip first: even when the identity is refused, no client copy may remain.
    strip_inbound(headers, names);
    // Built once per cached token (user and session id) or session (roles), then shared.
    let (memo, roles_memo) = who.header_memos();
    let user_id = memoized(&memo.user_id, || value(who.user_id(), Field::UserId))?;
    let roles = memoized(roles_memo, || roles_value(who.roles()))?;
    let session_id = match (&names.session_id, who.session_id()) {
        (Some(name), Some(sid)) => Some((
            name,
            memoized(&memo.session_id, || value(sid, Field::SessionId))?,
        )),
        _ => None,
    };
    insert(headers, names, user_id, roles, session_id);
    Ok(())
}

/// The memo's value, built by `build` the first time; a refused value is refused again with
/// its reason (that slow path only runs for an identity that cannot be sent).
fn memoized(
    memo: &HeaderMemo,
    build: impl Fn() -> Result<HeaderValue, IdentityError>,
) -> Result<HeaderValue, IdentityError> {
    memo.get_or_build(|| build().ok()).map_or_else(build, Ok)
}

/// [`set`] without the memos, for an identity that is not an [`Authenticated`] (tests).
#[cfg(test)]
fn write(
    headers: &mut HeaderMap,
    names: &IdentityNames,
    identity: &Identity<'_>,
) -> Result<(), IdentityError> {
    strip_inbound(headers, names);
    let user_id = value(identity.user_id, Field::UserId)?;
    let roles = roles_value(identity.roles)?;
    let session_id = match (&names.session_id, identity.session_id) {
        (Some(name), Some(sid)) => Some((name, value(sid, Field::SessionId)?)),
        _ => None,
    };
    insert(headers, names, user_id, roles, session_id);
    Ok(())
}

fn insert(
    headers: &mut HeaderMap,
    names: &IdentityNames,
    user_id: HeaderValue,
    roles: HeaderValue,
    session_id: Option<(&HeaderName, HeaderValue)>,
) {
    headers.insert(names.user_id.clone(), user_id);
    headers.insert(names.roles.clone(), roles);
    if let Some((name, session_id)) = session_id {
        headers.insert(name.clone(), session_id);
    }
}

/// One identity value as a header value: non-empty, no control bytes, no surrounding
/// whitespace (a backend that trims would read another value). Non-ASCII UTF-8 is kept as is.
fn value(s: &str, field: Field) -> Result<HeaderValue, IdentityError> {
    check(s, field)?;
    HeaderValue::from_str(s).map_err(|_| IdentityError::ControlCharacter(field))
}

fn check(s: &str, field: Field) -> Result<(), IdentityError> {
    if s.is_empty() {
        return Err(IdentityError::Empty(field));
    }
    if s.bytes().any(|b| b < 0x20 || b == 0x7F) {
        return Err(IdentityError::ControlCharacter(field));
    }
    if s.starts_with(' ') || s.ends_with(' ') {
        return Err(IdentityError::SurroundingWhitespace(field));
    }
    Ok(())
}

/// The roles joined with ','. Empty roles are skipped (they grant nothing); a role holding a
/// ',' is refused, since the upstream would split it into several roles.
fn roles_value(roles: &[String]) -> Result<HeaderValue, IdentityError> {
    let mut joined = String::with_capacity(roles.iter().map(|r| r.len() + 1).sum());
    for role in roles.iter().filter(|r| !r.is_empty()) {
        check(role, Field::Role)?;
        if role.contains(',') {
            return Err(IdentityError::CommaInRole);
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(role);
    }
    HeaderValue::try_from(joined).map_err(|_| IdentityError::ControlCharacter(Field::Role))
}

fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::hop_by_hop;

    fn config(session_id: bool) -> IdentityNames {
        IdentityNames::new(&Headers {
            user_id: HeaderName::from_static("x-user-id"),
            roles: HeaderName::from_static("x-user-roles"),
            session_id: session_id.then(|| HeaderName::from_static("x-session-id")),
            assertion: None,
        })
    }

    /// Parses raw header lines the way a client could send them.
    fn request(lines: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    fn identity<'a>(roles: &'a [String]) -> Identity<'a> {
        Identity {
            user_id: "alice",
            roles,
            session_id: Some("s-1"),
        }
    }

    #[test]
    fn every_spelling_and_copy_is_stripped() {
        let names = config(true);
        let mut headers = request(&[
            ("X-User-Id", "a"),
            ("x-user-id", "b"),
            ("X-USER-ID", "c"),
            ("X_User_Id", "d"),
            ("x-user_id", "e"),
            ("X_USER_ROLES", "admin"),
            ("X-User-Roles", "user"),
            ("X-User-Roles", "admin"),
            ("x-session_id", "s"),
            ("X-User-Idx", "keep"),
            ("X-User", "keep"),
            ("X-Userid", "keep"),
            ("Host", "example.com"),
        ]);
        strip_inbound(&mut headers, &names);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "x-user", "x-user-idx", "x-userid"]);
    }

    #[test]
    fn usual_session_id_is_stripped_even_when_not_configured() {
        let names = config(false);
        let mut headers = request(&[("X-Session-Id", "s"), ("X-User-Id", "a"), ("X-Other", "k")]);
        strip_inbound(&mut headers, &names);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-other"]);
    }

    #[test]
    fn usual_names_are_stripped_after_a_rename() {
        let names = IdentityNames::new(&Headers {
            user_id: HeaderName::from_static("x-auth-user"),
            roles: HeaderName::from_static("x-auth-groups"),
            session_id: Some(HeaderName::from_static("x-auth-session")),
            assertion: None,
        });
        let mut headers = request(&[
            ("X-User-Id", "root"),
            ("x_user_id", "root"),
            ("X-USER-ROLES", "admin"),
            ("X-User-Roles", "admin"),
            ("X_Session_Id", "s"),
            ("X-Auth-User", "root"),
            ("x_auth_groups", "admin"),
            ("X-Auth-Session", "s"),
            ("X-User-Idx", "keep"),
        ]);
        strip_inbound(&mut headers, &names);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-user-idx"]);
        assert_eq!(names.folded.len(), 6);
    }

    #[test]
    fn set_writes_one_copy_of_each() {
        let names = config(true);
        let roles = vec!["user".to_owned(), "admin".to_owned()];
        let mut headers = request(&[
            ("X-User-Id", "mallory"),
            ("X_User_Id", "mallory"),
            ("X-User-Roles", "user"),
            ("X-User-Roles", "admin"),
            ("X-Session-Id", "forged"),
        ]);
        write(&mut headers, &names, &identity(&roles)).expect("valid identity");
        assert_eq!(values(&headers, "x-user-id"), ["alice"]);
        assert_eq!(values(&headers, "x-user-roles"), ["user,admin"]);
        assert_eq!(values(&headers, "x-session-id"), ["s-1"]);
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn repeated_roles_never_survive_strip() {
        let names = config(true);
        for lines in [
            &[("X-User-Roles", "user"), ("X-User-Roles", "admin")][..],
            &[("X-User-Roles", "user"), ("X_User_Roles", "admin")][..],
            &[("x_user_roles", "admin")][..],
        ] {
            let mut headers = request(lines);
            strip_inbound(&mut headers, &names);
            assert!(headers.is_empty(), "{lines:?}");

            let mut headers = request(lines);
            write(&mut headers, &names, &identity(&[])).expect("valid identity");
            assert_eq!(values(&headers, "x-user-roles"), [""], "{lines:?}");
        }
    }

    #[test]
    fn connection_cannot_remove_the_injected_identity() {
        let names = config(true);
        let roles = vec!["user".to_owned()];
        let mut headers = request(&[
            ("Connection", "X-User-Id, x-user-roles, X_Session_Id"),
            ("X-User-Id", "mallory"),
            ("X-Forwarded-For", "1.2.3.4"),
        ]);
        // The pipeline order: hop-by-hop (Connection-named) first, then strip, then set.
        hop_by_hop::remove(&mut headers);
        strip_inbound(&mut headers, &names);
        write(&mut headers, &names, &identity(&roles)).expect("valid identity");
        assert_eq!(values(&headers, "x-user-id"), ["alice"]);
        assert_eq!(values(&headers, "x-user-roles"), ["user"]);
        assert_eq!(values(&headers, "x-session-id"), ["s-1"]);
        assert!(headers.get("connection").is_none());
    }

    #[test]
    fn session_id_not_written_unless_configured() {
        let names = config(false);
        let mut headers = HeaderMap::new();
        write(&mut headers, &names, &identity(&[])).expect("valid identity");
        assert!(headers.get("x-session-id").is_none());
        assert_eq!(values(&headers, "x-user-id"), ["alice"]);
    }

    #[test]
    fn bad_values_are_refused_and_nothing_is_injected() {
        let names = config(true);
        let ok_roles = vec!["user".to_owned()];
        let cases: Vec<(Identity<'_>, IdentityError)> = vec![
            (
                Identity {
                    user_id: "",
                    ..identity(&ok_roles)
                },
                IdentityError::Empty(Field::UserId),
            ),
            (
                Identity {
                    user_id: "alice\r\nX-User-Roles: admin",
                    ..identity(&ok_roles)
                },
                IdentityError::ControlCharacter(Field::UserId),
            ),
            (
                Identity {
                    user_id: "a\0",
                    ..identity(&ok_roles)
                },
                IdentityError::ControlCharacter(Field::UserId),
            ),
            (
                Identity {
                    user_id: "alice ",
                    ..identity(&ok_roles)
                },
                IdentityError::SurroundingWhitespace(Field::UserId),
            ),
            (
                Identity {
                    session_id: Some("s\n"),
                    ..identity(&ok_roles)
                },
                IdentityError::ControlCharacter(Field::SessionId),
            ),
            (
                Identity {
                    session_id: Some(""),
                    ..identity(&ok_roles)
                },
                IdentityError::Empty(Field::SessionId),
            ),
        ];
        for (bad, want) in cases {
            let mut headers = request(&[("X-User-Id", "mallory")]);
            assert_eq!(write(&mut headers, &names, &bad), Err(want), "{bad:?}");
            assert!(headers.is_empty(), "client copy gone, nothing injected");
        }

        for (roles, want) in [
            (vec!["user,admin".to_owned()], IdentityError::CommaInRole),
            (
                vec!["x\tadmin".to_owned()],
                IdentityError::ControlCharacter(Field::Role),
            ),
            (
                vec![" admin".to_owned()],
                IdentityError::SurroundingWhitespace(Field::Role),
            ),
        ] {
            let mut headers = HeaderMap::new();
            assert_eq!(write(&mut headers, &names, &identity(&roles)), Err(want));
            assert!(headers.is_empty());
        }
    }

    #[test]
    fn roles_join_skips_empties_and_keeps_utf8() {
        let names = config(false);
        let roles = vec![
            String::new(),
            "r\u{e9}le".to_owned(),
            "team lead".to_owned(),
        ];
        let mut headers = HeaderMap::new();
        let id = Identity {
            user_id: "j\u{f6}rg",
            ..identity(&roles)
        };
        write(&mut headers, &names, &id).expect("valid identity");
        assert_eq!(
            headers["x-user-roles"].as_bytes(),
            "r\u{e9}le,team lead".as_bytes()
        );
        assert_eq!(headers["x-user-id"].as_bytes(), "j\u{f6}rg".as_bytes());
    }

    #[test]
    fn response_side_check() {
        let names = config(true);
        for name in ["x-user-id", "x_user_roles", "x-session_id"] {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert!(looks_like_identity(&name, &names), "{name}");
        }
        for name in ["x-user", "x-user-ids", "content-type"] {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert!(!looks_like_identity(&name, &names), "{name}");
        }
    }

    #[test]
    fn underscore_in_configured_name_folds_too() {
        let names = IdentityNames::new(&Headers {
            user_id: HeaderName::from_static("remote_user"),
            roles: HeaderName::from_static("remote-groups"),
            session_id: None,
            assertion: None,
        });
        let mut headers = request(&[("Remote-User", "m"), ("remote_groups", "admin")]);
        strip_inbound(&mut headers, &names);
        assert!(headers.is_empty());
    }
}
