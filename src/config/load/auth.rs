//! The `[auth]` table: the auth center's path, signing key, lifetimes, refresh binding and
//! cookies, checked against `[jwt]` (the tokens it signs must verify there).

use std::time::Duration;

use toml::Spanned;

use super::jwt::hmac_secret;
use super::route::normalise_prefix;
use super::{days, quoted, Cx};
use crate::config::file::{AuthFile, JwtFile, JwtKeyFile};
use crate::config::{AuthCenter, BindRefresh, SigningKey};

pub(super) fn auth(
    cx: &mut Cx<'_>,
    a: &Spanned<AuthFile>,
    jwt: Option<&JwtFile>,
) -> Option<AuthCenter> {
    let table = a;
    let a = a.get_ref();
    let path = match (path(a), &a.path) {
        (Ok(p), _) => Some(p),
        (Err(why), Some(raw)) => {
            cx.err(raw, "auth.path", why);
            None
        }
        (Err(_), None) => None,
    };
    let signing_key = match (&a.signing_key, &a.signing_secret_env) {
        (Some(p), None) => cx
            .path(p, "auth.signing_key")
            .map(SigningKey::PrivateKeyFile),
        (None, Some(e)) => {
            hmac_secret(cx, e, "auth.signing_secret_env").map(|value| SigningKey::Secret {
                env: e.get_ref().clone(),
                value,
            })
        }
        (Some(_), Some(e)) => {
            cx.err(
                e,
                "auth.signing_secret_env",
                "set either auth.signing_key or auth.signing_secret_env, not both",
            );
            None
        }
        (None, None) => {
            cx.err(
                table,
                "auth",
                "missing signing key: set auth.signing_key (a private key file) or auth.signing_secret_env (HS256)",
            );
            None
        }
    };
    let signing_kid = match &a.signing_kid {
        Some(v) => cx.nonempty(v, "auth.signing_kid", "a key id"),
        None => Some("k1".to_owned()),
    };
    let access_ttl = cx.duration(
        a.access_ttl.as_ref(),
        "auth.access_ttl",
        Duration::from_secs(15 * 60),
        // No floor but the unit of `exp`: a token's lifetime counts whole seconds.
        Duration::from_secs(1),
        days(1),
    );
    let refresh_ttl = cx.duration(
        a.refresh_ttl.as_ref(),
        "auth.refresh_ttl",
        days(7),
        // Zero makes no sense; anything else is bounded only by access_ttl (below).
        Duration::from_secs(1),
        days(365),
    );
    if let (Some(acc), Some(refr), Some(at)) = (access_ttl, refresh_ttl, &a.refresh_ttl) {
        if refr < acc {
            cx.err(at, "auth.refresh_ttl", "the login session (refresh_ttl) must last at least as long as one access token (access_ttl)");
        }
    }
    let refresh_max_uses = cx
        .int(
            a.refresh_max_uses.as_ref(),
            "auth.refresh_max_uses",
            500,
            1,
            i64::from(u32::MAX),
        )
        .and_then(|n| u32::try_from(n).ok());
    let refresh_grace = refresh_grace(cx, a, access_ttl);
    let bind_refresh = cx.choice(
        a.bind_refresh.as_ref(),
        "auth.bind_refresh",
        &[
            ("none", BindRefresh::None),
            ("device", BindRefresh::Device),
            ("ip", BindRefresh::Ip),
        ],
        BindRefresh::Device,
    );
    if let (Some(jwt), Some(kid), Some(key)) = (jwt, &signing_kid, &signing_key) {
        verifiable(cx, table, jwt, kid, key);
    }
    Some(AuthCenter {
        path: path?,
        signing_key: signing_key?,
        signing_kid: signing_kid?,
        access_ttl: access_ttl?,
        refresh_ttl: refresh_ttl?,
        refresh_max_uses: refresh_max_uses?,
        bind_refresh: bind_refresh?,
        refresh_grace: refresh_grace?,
        registration: a.registration.as_ref().is_some_and(|b| *b.get_ref()),
        cookies: a.cookies.as_ref().is_none_or(|b| *b.get_ref()),
    })
}

/// `auth.path` in its normalised spelling (default "/auth"), or why it is refused.
pub(super) fn path(a: &AuthFile) -> Result<String, String> {
    let Some(raw) = &a.path else {
        return Ok("/auth".to_owned());
    };
    match normalise_prefix(raw.get_ref()) {
        Ok(p) if p == "/" => Err(
            "the auth center cannot take the whole site: use a prefix like \"/auth\"".to_owned(),
        ),
        Ok(p) => Ok(p),
        Err(why) => Err(format!(
            "expected a path prefix like \"/auth\", got {} ({why})",
            quoted(raw.get_ref())
        )),
    }
}

/// `auth.refresh_grace`: default 0 (off). A grace is for requests racing at the same moment
/// (browser tabs), so it is short: at most 60s, and shorter than one access token's life, so a
/// client that refreshes once per access token never meets its own grace.
fn refresh_grace(cx: &mut Cx<'_>, a: &AuthFile, access_ttl: Option<Duration>) -> Option<Duration> {
    let key = "auth.refresh_grace";
    let grace = cx.duration(
        a.refresh_grace.as_ref(),
        key,
        Duration::ZERO,
        Duration::ZERO,
        Duration::from_secs(60),
    )?;
    if let (Some(at), Some(access)) = (&a.refresh_grace, access_ttl) {
        if !grace.is_zero() && grace >= access {
            cx.err(
                at,
                key,
                "the refresh grace must be shorter than auth.access_ttl",
            );
            return None;
        }
    }
    Some(grace)
}

/// The tokens the auth center signs must verify against `[jwt]`: its kid names a key of the
/// same kind there (unless a JWKS may hold it), and an HS256 secret needs HS256 allowed.
fn verifiable(
    cx: &mut Cx<'_>,
    table: &Spanned<AuthFile>,
    jwt: &JwtFile,
    kid: &str,
    key: &SigningKey,
) {
    let a = table.get_ref();
    let (kid_at, kid_key) = match &a.signing_kid {
        Some(v) => (v.span().start, "auth.signing_kid"),
        None => (table.span().start, "auth"),
    };
    let keys: &[Spanned<JwtKeyFile>] = jwt.keys.as_ref().map_or(&[], |k| k.get_ref());
    let found = keys
        .iter()
        .map(Spanned::get_ref)
        .find(|k| k.kid.get_ref() == kid);
    match (found, key) {
        (None, _) if jwt.jwks_url.is_none() => cx.errs.at(
            kid_at,
            kid_key,
            format!("kid {} names no key in jwt.keys, so the gateway could not verify the tokens its auth center signs", quoted(kid)),
        ),
        (Some(k), SigningKey::PrivateKeyFile(_)) if k.public_key.is_none() => cx.errs.at(
            kid_at,
            kid_key,
            format!("jwt.keys has kid {} as a `secret_env` key, but auth.signing_key is a private key; give it the matching `public_key`", quoted(kid)),
        ),
        (Some(k), SigningKey::Secret { .. }) if k.secret_env.is_none() => cx.errs.at(
            kid_at,
            kid_key,
            format!("jwt.keys has kid {} as a `public_key` key, but auth.signing_secret_env is an HS256 secret; give it `secret_env`", quoted(kid)),
        ),
        _ => {}
    }
    if let (SigningKey::Secret { .. }, Some(at)) = (key, &a.signing_secret_env) {
        let hs256 = jwt
            .algorithms
            .get_ref()
            .iter()
            .any(|v| v.get_ref() == "HS256");
        if !hs256 {
            cx.err(at, "auth.signing_secret_env", "the auth center signs HS256 with this secret, and jwt.algorithms does not list HS256");
        }
    }
}
