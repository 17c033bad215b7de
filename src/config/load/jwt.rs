//! Converts `[jwt]` (algorithms, keys, JWKS) and `[auth]` (the auth center), including the
//! checks that tie them together: every algorithm has a key of its kind, every key an
//! algorithm, and the auth center's signing key is one the gateway itself can verify.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::{days, opt, quoted, Cx};
use crate::config::file::{JwtFile, JwtKeyFile};
use crate::config::{Jwt, JwtKey, KeyMaterial};

const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn algorithm(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str) -> Option<Algorithm> {
    let name = v.get_ref();
    if let Some((_, a)) = ALGORITHMS.iter().find(|(n, _)| n == name) {
        return Some(*a);
    }
    let reason = if name.trim().eq_ignore_ascii_case("none") {
        "the \"none\" algorithm is never accepted: tokens must be signed".to_owned()
    } else {
        let all: Vec<&str> = ALGORITHMS.iter().map(|(n, _)| *n).collect();
        let hint = ALGORITHMS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, _)| format!(" (names are case-sensitive: \"{n}\")"))
            .unwrap_or_default();
        format!(
            "expected one of {}, got {}{hint}",
            all.join(", "),
            quoted(name)
        )
    };
    cx.err(v, key, reason);
    None
}

pub(super) fn jwt(cx: &mut Cx<'_>, j: &Spanned<JwtFile>) -> Option<Jwt> {
    let table = j;
    let j = j.get_ref();

    let mut algorithms = Some(Vec::new());
    for (i, v) in j.algorithms.get_ref().iter().enumerate() {
        match (
            algorithm(cx, v, &format!("jwt.algorithms[{i}]")),
            &mut algorithms,
        ) {
            (Some(a), Some(all)) if !all.contains(&a) => all.push(a),
            (Some(_), _) => {}
            (None, all) => *all = None,
        }
    }
    if j.algorithms.get_ref().is_empty() {
        cx.err(
            &j.algorithms,
            "jwt.algorithms",
            "expected at least one algorithm, like [\"EdDSA\"]",
        );
        algorithms = None;
    }

    let issuer = cx.nonempty(
        &j.issuer,
        "jwt.issuer",
        "the issuer (`iss`) tokens must carry",
    );
    let audience = cx.nonempty(
        &j.audience,
        "jwt.audience",
        "the audience (`aud`) tokens must carry",
    );
    let leeway = leeway(cx, j.leeway.as_ref(), "jwt.leeway");
    let user_id_claim = claim(cx, j.user_id_claim.as_ref(), "jwt.user_id_claim", "sub");
    let roles_claim = claim(cx, j.roles_claim.as_ref(), "jwt.roles_claim", "roles");
    let session_claim = claim(cx, j.session_claim.as_ref(), "jwt.session_claim", "sid");
    let cookie = opt(cx, j.cookie.as_ref(), cookie_name);

    let key_files: &[Spanned<JwtKeyFile>] = j.keys.as_ref().map_or(&[], |k| k.get_ref());
    let mut keys = Some(Vec::new());
    for (i, k) in key_files.iter().enumerate() {
        let key = jwt_key(cx, k, i, &key_files[..i]);
        match (key, &mut keys) {
            (Some(key), Some(all)) => all.push(key),
            (Some(_), None) => {}
            (None, all) => *all = None,
        }
    }
    let jwks_url = opt(cx, j.jwks_url.as_ref(), |cx, v| {
        jwks_url(cx, v, "jwt.jwks_url")
    });
    let jwks_refresh = jwks_refresh(cx, j.jwks_refresh.as_ref(), "jwt.jwks_refresh");

    if key_files.is_empty() && j.jwks_url.is_none() {
        cx.err(
            table,
            "jwt",
            "no verification key: set jwt.keys (like [{ kid = \"k1\", public_key = \"certs/signing.pub.pem\" }]) or jwt.jwks_url",
        );
    }
    if let Some(algs) = &algorithms {
        agree(cx, j, algs, key_files);
    }

    Some(Jwt {
        algorithms: algorithms?,
        issuer: issuer?,
        audience: audience?,
        leeway: leeway?,
        user_id_claim: user_id_claim?,
        roles_claim: roles_claim?,
        session_claim: session_claim?,
        cookie: cookie?,
        keys: keys?,
        jwks_url: jwks_url?,
        jwks_refresh: jwks_refresh?,
    })
}

/// Every algorithm needs a key of its kind, and every key an algorithm that uses it.
fn agree(cx: &mut Cx<'_>, j: &JwtFile, algs: &[Algorithm], keys: &[Spanned<JwtKeyFile>]) {
    let malformed = |k: &Spanned<JwtKeyFile>| {
        let k = k.get_ref();
        k.secret_env.is_some() == k.public_key.is_some()
    };
    if keys.iter().any(malformed) {
        return; // `jwt_key` already said a key needs exactly one of them; fix that first
    }
    let has_secret = keys.iter().any(|k| k.get_ref().secret_env.is_some());
    let has_public = keys.iter().any(|k| k.get_ref().public_key.is_some()) || j.jwks_url.is_some();
    for (i, v) in j.algorithms.get_ref().iter().enumerate() {
        let Some((name, a)) = ALGORITHMS.iter().find(|(n, _)| n == v.get_ref()) else {
            continue;
        };
        let key = format!("jwt.algorithms[{i}]");
        if is_hmac(*a) && !has_secret {
            cx.err(
                v,
                &key,
                format!(
                    "{name} verifies with a shared secret: add a key with `secret_env` to jwt.keys"
                ),
            );
        } else if !is_hmac(*a) && !has_public {
            cx.err(
                v,
                &key,
                format!("{name} verifies with a public key: add a key with `public_key` to jwt.keys, or set jwt.jwks_url"),
            );
        }
    }
    let any_hmac = algs.iter().any(|a| is_hmac(*a));
    let any_asym = algs.iter().any(|a| !is_hmac(*a));
    for (i, k) in keys.iter().enumerate() {
        let kf = k.get_ref();
        if let (Some(at), false) = (&kf.secret_env, any_hmac) {
            cx.err(
                at,
                &format!("jwt.keys[{i}].secret_env"),
                "a `secret_env` key is used by HS256, HS384 or HS512, and jwt.algorithms lists none of them",
            );
        }
        if let (Some(at), false) = (&kf.public_key, any_asym) {
            cx.err(
                at,
                &format!("jwt.keys[{i}].public_key"),
                "a `public_key` key is used by RS*, PS*, ES* or EdDSA, and jwt.algorithms lists none of them",
            );
        }
    }
}

fn jwt_key(
    cx: &mut Cx<'_>,
    k: &Spanned<JwtKeyFile>,
    i: usize,
    before: &[Spanned<JwtKeyFile>],
) -> Option<JwtKey> {
    let kf = k.get_ref();
    let prefix = format!("jwt.keys[{i}]");
    let kid_key = format!("{prefix}.kid");
    let mut kid = cx.nonempty(&kf.kid, &kid_key, "a key id");
    if kid
        .as_deref()
        .is_some_and(|s| s.chars().any(char::is_control))
    {
        cx.err(&kf.kid, &kid_key, "a key id cannot hold control characters");
        kid = None;
    }
    if let Some(j) = before
        .iter()
        .position(|b| b.get_ref().kid.get_ref() == kf.kid.get_ref())
    {
        cx.err(
            &kf.kid,
            &kid_key,
            format!(
                "kid {} is already used by jwt.keys[{j}]; kids must be unique",
                quoted(kf.kid.get_ref())
            ),
        );
        kid = None;
    }
    let material = match (&kf.public_key, &kf.secret_env) {
        (Some(p), None) => cx
            .path(p, &format!("{prefix}.public_key"))
            .map(KeyMaterial::PublicKeyFile),
        (None, Some(e)) => {
            let key = format!("{prefix}.secret_env");
            hmac_secret(cx, e, &key).map(|value| KeyMaterial::Secret {
                env: e.get_ref().clone(),
                value,
            })
        }
        (Some(_), Some(e)) => {
            cx.err(
                e,
                &format!("{prefix}.secret_env"),
                "a key has either `public_key` or `secret_env`, not both",
            );
            None
        }
        (None, None) => {
            cx.err(
                k,
                &prefix,
                "a key needs `public_key` (a PEM file, for RS*/PS*/ES*/EdDSA) or `secret_env` (an environment variable holding an HS* secret)",
            );
            None
        }
    };
    Some(JwtKey {
        kid: kid?,
        material: material?,
    })
}

/// The shortest HS* secret accepted: RFC 7518 section 3.2 wants a key at least as long as
/// the hash (256 bits for HS256).
const MIN_HMAC_SECRET_BYTES: usize = 32;

/// An HS* secret from the environment, at least [`MIN_HMAC_SECRET_BYTES`] long.
pub(super) fn hmac_secret(cx: &mut Cx<'_>, e: &Spanned<String>, key: &str) -> Option<Vec<u8>> {
    let value = cx.secret_env(e, key)?;
    if value.len() < MIN_HMAC_SECRET_BYTES {
        cx.err(
            e,
            key,
            format!(
                "${} holds {} bytes; an HS* secret needs at least {MIN_HMAC_SECRET_BYTES} (RFC 7518 section 3.2), for example `openssl rand -base64 32`",
                e.get_ref(),
                value.len()
            ),
        );
        return None;
    }
    Some(value)
}

/// A cookie name is an RFC 6265 token: visible ASCII without separators.
fn cookie_name(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<String> {
    let s = v.get_ref();
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if ok {
        Some(s.clone())
    } else {
        cx.err(
            v,
            "jwt.cookie",
            format!(
                "expected a cookie name (letters, digits and !#$%&'*+-.^_`|~), like \"gw_access\", got {}",
                quoted(s)
            ),
        );
        None
    }
}

/// `https://...`, or `http://` to a loopback host only (the keys decide who is trusted).
pub(super) fn jwks_url(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str) -> Option<http::Uri> {
    cx.place(v, key, None);
    secure_url(cx, v, key, "https://idp.example/.well-known/jwks.json")
}

/// An issuer URL (the exact `iss`, where discovery starts): the rule of `jwks_url`, and no
/// query or fragment (discovery appends `/.well-known/openid-configuration`). Kept as written.
pub(super) fn issuer_url(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str) -> Option<String> {
    cx.place(v, key, None);
    secure_url(cx, v, key, "https://idp.example.com")?;
    if v.get_ref().contains(['?', '#']) {
        cx.err(
            v,
            key,
            format!(
                "an issuer URL has no query or fragment, got {}",
                quoted(v.get_ref())
            ),
        );
        return None;
    }
    Some(v.get_ref().clone())
}

/// Clock skew allowed on `exp` and `nbf`: default 30s, at most 5m.
pub(super) fn leeway(cx: &mut Cx<'_>, v: Option<&Spanned<String>>, key: &str) -> Option<Duration> {
    cx.duration(
        v,
        key,
        Duration::from_secs(30),
        Duration::ZERO,
        Duration::from_secs(300),
    )
}

/// Background JWKS refresh period: default 5m, from 10s to 1d.
pub(super) fn jwks_refresh(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<String>>,
    key: &str,
) -> Option<Duration> {
    cx.duration(
        v,
        key,
        Duration::from_secs(300),
        Duration::from_secs(10),
        days(1),
    )
}

/// A claim name (non-empty), or `default`.
pub(super) fn claim(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<String>>,
    key: &str,
    default: &str,
) -> Option<String> {
    match v {
        Some(v) => cx.nonempty(v, key, "a claim name"),
        None => Some(default.to_owned()),
    }
}

/// The algorithms of a provider's tokens (`[[issuer]]`, `[oidc]`): default `["RS256"]`,
/// names from the `[jwt]` list, asymmetric only (the keys come from the provider's JWKS),
/// at least one, none twice.
pub(super) fn provider_algorithms(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
) -> Option<Vec<Algorithm>> {
    let Some(v) = v else {
        return Some(vec![Algorithm::RS256]);
    };
    if v.get_ref().is_empty() {
        cx.err(v, key, "expected at least one algorithm, like [\"RS256\"]");
        return None;
    }
    let mut seen = Vec::new();
    let mut ok = true;
    for (i, name) in v.get_ref().iter().enumerate() {
        let k = format!("{key}[{i}]");
        let Some(a) = algorithm(cx, name, &k) else {
            ok = false;
            continue;
        };
        let reason = if is_hmac(a) {
            format!(
                "{} is refused: this provider's keys come from its JWKS, and symmetric keys are never taken from one; use RS*, PS*, ES* or EdDSA",
                name.get_ref()
            )
        } else if seen.contains(&a) {
            format!("{} is listed twice", name.get_ref())
        } else {
            seen.push(a);
            continue;
        };
        cx.err(name, &k, reason);
        ok = false;
    }
    ok.then_some(seen)
}

/// An `https://` URL, or `http://` to a loopback host only; no credentials in it. For what
/// the gateway trusts (keys) or tells (spans with user ids).
pub(super) fn secure_url(
    cx: &mut Cx<'_>,
    v: &Spanned<String>,
    key: &str,
    example: &str,
) -> Option<http::Uri> {
    let s = v.get_ref();
    let bad = || format!("expected a URL like \"{example}\", got {}", quoted(s));
    let Ok(uri) = s.parse::<http::Uri>() else {
        cx.err(v, key, bad());
        return None;
    };
    let reason = match uri.scheme_str() {
        _ if uri.host().unwrap_or_default().is_empty() => Err(bad()),
        Some("https" | "http") => crate::config::outbound_url::check(&uri),
        _ => Err(format!("expected an https:// URL, got {}", quoted(s))),
    };
    match reason {
        Ok(()) => Some(uri),
        Err(r) => {
            cx.err(v, key, r);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use crate::config::load::load_str_with_env;

    /// The smallest valid file with one HS256 key from `$GW_HS`.
    fn base() -> String {
        crate::config::load::tests::MIN
            .replace(r#"algorithms = ["EdDSA"]"#, r#"algorithms = ["HS256"]"#)
            .replace(
                r#"keys = [{ kid = "k1", public_key = "pub.pem" }]"#,
                r#"keys = [{ kid = "h1", secret_env = "GW_HS" }]"#,
            )
    }

    /// The errors of `src` with `GW_HS` set to `secret`, as `line:col key: reason`.
    fn errors(src: &str, secret: &str) -> Vec<String> {
        let env = |name: &str| (name == "GW_HS").then(|| OsString::from(secret));
        match load_str_with_env(src, Path::new("gw.toml"), &env) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}:{} {}: {}", e.line, e.col, e.key, e.reason))
                    .collect()
            }
        }
    }

    #[test]
    fn an_hs_secret_shorter_than_32_bytes_is_an_error_at_its_key() {
        let short = "x".repeat(31);
        let errs = errors(&base(), &short);
        assert_eq!(errs.len(), 1, "{errs:?}");
        // `keys = [{ kid = "h1", secret_env = "GW_HS" }]` is line 12; the value at col 36.
        assert!(
            errs[0].starts_with("12:36 jwt.keys[0].secret_env: $GW_HS holds 31 bytes"),
            "{errs:?}"
        );
        assert!(errs[0].contains("RFC 7518"), "{errs:?}");
        assert!(errors(&base(), &"x".repeat(32)).is_empty());
    }

    #[test]
    fn a_short_auth_signing_secret_is_an_error_at_its_key() {
        let src = format!(
            "{}\n[auth]\nsigning_secret_env = \"GW_HS\"\nsigning_kid = \"h1\"\n",
            base()
        );
        let line = src
            .lines()
            .position(|l| l.starts_with("signing_secret_env"))
            .unwrap()
            + 1;
        let errs = errors(&src, "sixteen byte key");
        assert!(
            errs.iter().any(|e| e.starts_with(&format!(
                "{line}:22 auth.signing_secret_env: $GW_HS holds 16 bytes"
            ))),
            "{errs:?}"
        );
        assert!(errors(&src, &"y".repeat(48)).is_empty());
    }
}
