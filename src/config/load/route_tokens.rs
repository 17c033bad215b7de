//! A route's `issuers` (whose tokens it accepts) and `claims_to_headers` (which of their
//! claims go upstream as headers), checked against `[[issuer]]`, `[oidc]` and `[headers]`.

use http::header::HeaderName;
use toml::Spanned;

use super::tables::{fold, header_name, identity_names, reserved};
use super::{quoted, Cx};
use crate::config::document::Document;
use crate::config::file::ClaimsToHeaders;
use crate::config::OWN_ISSUER;

/// What the routes' token keys are checked against, gathered once from the file as written.
pub(super) struct Known<'a> {
    /// The `[[issuer]]` names.
    issuers: Vec<&'a str>,
    /// Whether every `[[issuer]]` table deserialized; when one did not (its error says why),
    /// a name found nowhere may be its, and is not reported.
    all_issuers: bool,
    oidc: Option<&'a str>,
    /// Folded header names the gateway sets for an identity, and what names each.
    identity: Vec<(String, String)>,
}

impl<'a> Known<'a> {
    pub(super) fn new(doc: &'a Document) -> Self {
        Known {
            issuers: doc
                .issuers
                .iter()
                .map(|(_, f)| f.get_ref().name.get_ref().as_str())
                .collect(),
            all_issuers: doc.issuers.len() == doc.issuer_count,
            oidc: doc
                .oidc
                .as_ref()
                .map(|o| o.get_ref().name.get_ref().as_str()),
            identity: identity_names(doc.headers.as_ref().map(Spanned::get_ref)),
        }
    }
}

/// `issuers`: default `["gateway"]`; each "gateway" or an `[[issuer]]`'s name, none twice,
/// at least one; not on a public route.
pub(super) fn issuers(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
    public: bool,
    known: &Known<'_>,
) -> Option<Vec<String>> {
    let Some(v) = v else {
        return Some(vec![OWN_ISSUER.to_owned()]);
    };
    if public {
        cx.err(
            v,
            key,
            "a public route checks no token; remove `issuers` or set auth = \"required\" or \"optional\"",
        );
        return None;
    }
    if v.get_ref().is_empty() {
        cx.err(
            v,
            key,
            "expected at least one issuer, like [\"gateway\"]; leave `issuers` out for the gateway's own tokens only",
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in v.get_ref().iter().enumerate() {
        let s = item.get_ref();
        let defined = s == OWN_ISSUER || known.issuers.contains(&s.as_str());
        let reason = if defined && out.contains(s) {
            format!("{} is listed twice", quoted(s))
        } else if defined {
            out.push(s.clone());
            continue;
        } else if known.oidc == Some(s.as_str()) {
            format!(
                "no [[issuer]] named {}: that is [oidc]'s name, and its logins get the gateway's own tokens, which \"{OWN_ISSUER}\" accepts",
                quoted(s)
            )
        } else if !known.all_issuers {
            ok = false;
            continue;
        } else {
            let mut names = vec![quoted(OWN_ISSUER)];
            names.extend(known.issuers.iter().map(|n| quoted(n)));
            format!(
                "no [[issuer]] named {}; expected one of {}",
                quoted(s),
                names.join(", ")
            )
        };
        cx.err(item, &format!("{key}[{i}]"), reason);
        ok = false;
    }
    ok.then_some(out)
}

/// `claims_to_headers`: (header, claim) in file order. A header name is valid, of the
/// gateway's own choosing (not a standard, hop-by-hop, framing, proxy or forwarding header),
/// not an identity or assertion header, and appears once (ignoring case, '_' read as '-');
/// a claim name is not empty. Not on a public route.
pub(super) fn claims_to_headers(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<ClaimsToHeaders>>,
    key: &str,
    public: bool,
    known: &Known<'_>,
) -> Option<Vec<(HeaderName, String)>> {
    let Some(v) = v else {
        return Some(Vec::new());
    };
    if public {
        cx.err(
            v,
            key,
            "a public route has no token whose claims could be passed on; remove `claims_to_headers` or set auth = \"required\" or \"optional\"",
        );
        return None;
    }
    let pairs = &v.get_ref().0;
    let mut out = Vec::with_capacity(pairs.len());
    let mut ok = true;
    for (i, (h, c)) in pairs.iter().enumerate() {
        let k = format!("{key}.{}", h.get_ref());
        let name = claim_header(cx, h, &k, known);
        let repeat = pairs[..i]
            .iter()
            .find(|(earlier, _)| fold(earlier.get_ref()) == fold(h.get_ref()));
        if let (Some(_), Some((earlier, _))) = (&name, repeat) {
            cx.err(
                h,
                &k,
                format!(
                    "{} is already set here as {} (header names ignore case, and '_' is read as '-')",
                    h.get_ref(),
                    earlier.get_ref()
                ),
            );
            ok = false;
        }
        let claim = cx.nonempty(c, &k, "a claim name");
        match (name, claim) {
            (Some(n), Some(c)) => out.push((n, c)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// One header name of `claims_to_headers`. Reserved names are refused in every spelling a
/// backend may fold into them (`X_Forwarded_For`).
fn claim_header(
    cx: &mut Cx<'_>,
    h: &Spanned<String>,
    key: &str,
    known: &Known<'_>,
) -> Option<HeaderName> {
    let name = header_name(cx, h, key, "X-User-Email")?;
    let folded = fold(name.as_str());
    let reason = if reserved(&folded) {
        format!(
            "{} is a standard header with its own meaning; pick a name of your own, like \"X-User-Email\"",
            h.get_ref()
        )
    } else if folded.starts_with("proxy-") || folded.starts_with("x-forwarded-") {
        format!(
            "{} is a proxy or forwarding header; pick a name of your own, like \"X-User-Email\"",
            h.get_ref()
        )
    } else if let Some((_, what)) = known.identity.iter().find(|(n, _)| *n == folded) {
        format!(
            "{} is already used by {what}, which only the gateway sets",
            h.get_ref()
        )
    } else {
        return Some(name);
    };
    cx.err(h, key, reason);
    None
}
