//! Converts `[[issuer]]` (external token issuers) and `[oidc]` (browser login through an
//! OpenID provider): their names, issuer URLs, algorithms and defaults, and the checks that
//! tie them together and to `[jwt]` and `[auth]`.

use toml::Spanned;

use super::jwt::{claim, issuer_url, jwks_refresh, jwks_url, leeway, provider_algorithms};
use super::route::normalise_prefix;
use super::{opt, quoted, Cx};
use crate::config::document::Document;
use crate::config::file::{IssuerFile, OidcFile};
use crate::config::{Issuer, IssuerSession, Oidc, OidcSecret, OWN_ISSUER};

/// The `[[issuer]]` tables in file order; `None` when one is invalid.
pub(super) fn issuers(cx: &mut Cx<'_>, doc: &Document) -> Option<Vec<Issuer>> {
    let jwt_issuer = doc
        .jwt
        .as_ref()
        .map(|j| j.get_ref().issuer.get_ref().as_str());
    let mut out = Some(Vec::new());
    for (n, (i, f)) in doc.issuers.iter().enumerate() {
        let issuer = issuer(cx, f, *i, &doc.issuers[..n], jwt_issuer);
        match (issuer, &mut out) {
            (Some(issuer), Some(all)) => all.push(issuer),
            (Some(_), None) => {}
            (None, all) => *all = None,
        }
    }
    // A table that did not deserialize already has its error.
    out.filter(|all| all.len() == doc.issuer_count)
}

fn issuer(
    cx: &mut Cx<'_>,
    table: &Spanned<IssuerFile>,
    i: usize,
    before: &[(usize, Spanned<IssuerFile>)],
    jwt_issuer: Option<&str>,
) -> Option<Issuer> {
    let f = table.get_ref();
    let k = |field: &str| format!("issuer[{i}].{field}");
    let mut name = provider_name(cx, &f.name, &k("name"));
    if let Some((j, _)) = before.iter().find(|(_, b)| {
        b.get_ref()
            .name
            .get_ref()
            .eq_ignore_ascii_case(f.name.get_ref())
    }) {
        cx.err(
            &f.name,
            &k("name"),
            format!(
                "issuer[{j}] already has the name {}; names must be unique, whatever their case (a backend may compare user ids ignoring case)",
                quoted(f.name.get_ref())
            ),
        );
        name = None;
    }
    let mut url = issuer_url(cx, &f.issuer, &k("issuer"));
    if url.is_some() {
        let same = before
            .iter()
            .find(|(_, b)| b.get_ref().issuer.get_ref() == f.issuer.get_ref());
        let reason = match same {
            Some((j, _)) => Some(format!(
                "issuer[{j}] already has this issuer URL; one [[issuer]] per issuer"
            )),
            None if jwt_issuer == Some(f.issuer.get_ref().as_str()) => Some(
                "this is jwt.issuer, the `iss` of the gateway's own tokens; an [[issuer]] is another one"
                    .to_owned(),
            ),
            None => None,
        };
        if let Some(reason) = reason {
            cx.err(&f.issuer, &k("issuer"), reason);
            url = None;
        }
    }
    let audience = cx.nonempty(
        &f.audience,
        &k("audience"),
        "the audience (`aud`) its tokens must carry",
    );
    let algorithms = provider_algorithms(cx, f.algorithms.as_ref(), &k("algorithms"));
    let user_id_claim = claim(cx, f.user_id_claim.as_ref(), &k("user_id_claim"), "sub");
    let roles_claim = claim(cx, f.roles_claim.as_ref(), &k("roles_claim"), "roles");
    let session = match &f.session {
        None => {
            cx.err(
                table,
                &format!("issuer[{i}]"),
                "missing `session`: choose \"none\" (the token alone authenticates) or \"required\" (a gateway session too)",
            );
            None
        }
        Some(v) => cx.choice(
            Some(v),
            &k("session"),
            &[
                ("none", IssuerSession::None),
                ("required", IssuerSession::Required),
            ],
            IssuerSession::None,
        ),
    };
    let session_claim = match (&f.session_claim, session) {
        (Some(v), Some(IssuerSession::None)) => {
            cx.err(
                v,
                &k("session_claim"),
                "only used with session = \"required\"; with session = \"none\" no session is looked up",
            );
            None
        }
        (v, _) => claim(cx, v.as_ref(), &k("session_claim"), "sid"),
    };
    let leeway = leeway(cx, f.leeway.as_ref(), &k("leeway"));
    let jwks = opt(cx, f.jwks_url.as_ref(), |cx, v| {
        jwks_url(cx, v, &k("jwks_url"))
    });
    let refresh = jwks_refresh(cx, f.jwks_refresh.as_ref(), &k("jwks_refresh"));
    Some(Issuer {
        name: name?,
        issuer: url?,
        audience: audience?,
        algorithms: algorithms?,
        user_id_claim: user_id_claim?,
        roles_claim: roles_claim?,
        session: session?,
        session_claim: session_claim?,
        leeway: leeway?,
        jwks_url: jwks?,
        jwks_refresh: refresh?,
    })
}

/// The name of an `[[issuer]]` or of `[oidc]`: its users are `<name>:<sub>`.
fn provider_name(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str) -> Option<String> {
    let s = v.get_ref();
    let valid = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let reason = if !valid {
        format!(
            "expected a name of 1 to 64 letters, digits, '.', '_' or '-' (its users are <name>:<sub>), got {}",
            quoted(s)
        )
    } else if s.eq_ignore_ascii_case(OWN_ISSUER) {
        format!("\"{OWN_ISSUER}\" stands for the gateway's own tokens (in a route's `issuers`); pick another name")
    } else {
        return Some(s.clone());
    };
    cx.err(v, key, reason);
    None
}

const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// `[oidc]`; it needs `[auth]`, whose sessions its logins become.
pub(super) fn oidc(cx: &mut Cx<'_>, table: &Spanned<OidcFile>, doc: &Document) -> Option<Oidc> {
    let o = table.get_ref();
    let auth = doc.auth.as_ref().map(Spanned::get_ref);
    if auth.is_none() {
        cx.err(
            table,
            "oidc",
            "needs [auth]: an OpenID login becomes an auth-center session (its cookies and tokens)",
        );
    }
    // A browser login lives in cookies: the access cookie the pipeline reads, set by the
    // auth center.
    let cookies_off = auth.is_some_and(|a| a.cookies.as_ref().is_some_and(|c| !*c.get_ref()));
    let no_access_cookie = doc
        .jwt
        .as_ref()
        .is_some_and(|j| j.get_ref().cookie.is_none());
    if auth.is_some() && (cookies_off || no_access_cookie) {
        cx.err(
            table,
            "oidc",
            "needs auth.cookies = true and jwt.cookie (for example \"__Host-gw_access\"): a browser login lives in the auth center's cookies",
        );
    }
    let mut name = provider_name(cx, &o.name, "oidc.name");
    if let Some((j, _)) = doc.issuers.iter().find(|(_, b)| {
        b.get_ref()
            .name
            .get_ref()
            .eq_ignore_ascii_case(o.name.get_ref())
    }) {
        cx.err(
            &o.name,
            "oidc.name",
            format!(
                "issuer[{j}] already has the name {}; [oidc] and [[issuer]] names must be unique, whatever their case",
                quoted(o.name.get_ref())
            ),
        );
        name = None;
    }
    // The provider's ID tokens are for the gateway (aud = client_id): an [[issuer]] of the
    // same provider with that audience would take them as bearer tokens.
    if let Some((j, b)) = doc.issuers.iter().find(|(_, b)| {
        let b = b.get_ref();
        b.issuer.get_ref() == o.issuer.get_ref() && b.audience.get_ref() == o.client_id.get_ref()
    }) {
        cx.err(
            &b.get_ref().audience,
            &format!("issuer[{j}].audience"),
            format!(
                "{} is [oidc]'s client_id at the same provider: its ID tokens would pass as bearer tokens; use the audience of the provider's access tokens for your APIs",
                quoted(o.client_id.get_ref())
            ),
        );
    }
    let issuer = issuer_url(cx, &o.issuer, "oidc.issuer");
    let client_id = cx.nonempty(
        &o.client_id,
        "oidc.client_id",
        "the client id registered with the provider",
    );
    let client_secret = opt(cx, o.client_secret_env.as_ref(), client_secret);
    // The auth center's path as `[auth]` gives it; when that is invalid, it says so itself.
    let auth_path = auth.and_then(|a| super::auth::path(a).ok());
    let redirect_path = redirect_path(cx, o.redirect_path.as_ref(), auth_path.as_deref());
    let scopes = scopes(cx, o.scopes.as_ref());
    let roles_claim = claim(cx, o.roles_claim.as_ref(), "oidc.roles_claim", "groups");
    let algorithms = provider_algorithms(cx, o.algorithms.as_ref(), "oidc.algorithms");
    let leeway = leeway(cx, o.leeway.as_ref(), "oidc.leeway");
    auth?;
    Some(Oidc {
        name: name?,
        issuer: issuer?,
        client_id: client_id?,
        client_secret: client_secret?,
        redirect_path: redirect_path?,
        scopes: scopes?,
        roles_claim: roles_claim?,
        algorithms: algorithms?,
        leeway: leeway?,
    })
}

/// `oidc.client_secret_env`: set, non-empty, UTF-8 (it is sent in a form).
fn client_secret(cx: &mut Cx<'_>, v: &Spanned<String>) -> Option<OidcSecret> {
    let key = "oidc.client_secret_env";
    let bytes = cx.secret_env(v, key)?;
    match String::from_utf8(bytes) {
        Ok(s) => Some(OidcSecret(s)),
        Err(_) => {
            cx.err(v, key, format!("${} is not UTF-8 text", v.get_ref()));
            None
        }
    }
}

/// `oidc.redirect_path`: default `{auth.path}/oidc/callback`; a normalised absolute path that
/// is not one of the auth center's other OpenID endpoints. `None` with an error, or when the
/// default cannot be known (no `[auth]`, or a bad `auth.path`: errors of their own).
fn redirect_path(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<String>>,
    auth_path: Option<&str>,
) -> Option<String> {
    let key = "oidc.redirect_path";
    let Some(v) = v else {
        return auth_path.map(|p| format!("{p}/oidc/callback"));
    };
    let path = match normalise_prefix(v.get_ref()) {
        Ok(p) => p,
        Err(why) => {
            cx.err(
                v,
                key,
                format!(
                    "expected a path like \"/auth/oidc/callback\", got {} ({why})",
                    quoted(v.get_ref())
                ),
            );
            return None;
        }
    };
    if let Some(base) = auth_path {
        for endpoint in ["login", "backchannel-logout"] {
            if path == format!("{base}/oidc/{endpoint}") {
                cx.err(
                    v,
                    key,
                    format!("{path} is the auth center's OpenID {endpoint} endpoint; the callback needs a path of its own, like \"{base}/oidc/callback\""),
                );
                return None;
            }
        }
    }
    Some(path)
}

/// `oidc.scopes`: RFC 6749 scope tokens (visible ASCII but '"' and '\'), none twice, and
/// "openid" among them.
fn scopes(cx: &mut Cx<'_>, v: Option<&Spanned<Vec<Spanned<String>>>>) -> Option<Vec<String>> {
    let key = "oidc.scopes";
    let Some(v) = v else {
        return Some(DEFAULT_SCOPES.map(str::to_owned).to_vec());
    };
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in v.get_ref().iter().enumerate() {
        let s = item.get_ref();
        let token = s
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        let reason = if s.is_empty() {
            "expected a scope, got an empty string".to_owned()
        } else if !token {
            format!(
                "a scope is visible ASCII without spaces, '\"' or '\\' (RFC 6749 section 3.3), got {}",
                quoted(s)
            )
        } else if out.contains(s) {
            format!("{} is listed twice", quoted(s))
        } else {
            out.push(s.clone());
            continue;
        };
        cx.err(item, &format!("{key}[{i}]"), reason);
        ok = false;
    }
    if !v.get_ref().iter().any(|s| s.get_ref() == "openid") {
        cx.err(
            v,
            key,
            "must contain \"openid\": it is what makes the login an OpenID Connect one",
        );
        ok = false;
    }
    ok.then_some(out)
}
