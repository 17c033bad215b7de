//! An OpenID provider's metadata, read from `<issuer>/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0): where its keys are, and, for the browser login, where to
//! send the user and trade the code. The document must name exactly the configured issuer
//! (section 4.3: otherwise anyone serving a document could claim to be it), and every URL in
//! it must follow the same rule as the issuer's own (https, or http to loopback only).

use http::Uri;
use serde_json::{Map, Value};

use super::jwt::strict_json;
use super::outbound::{Outbound, OutboundError};
use crate::config::outbound_url;

/// What the gateway uses of a discovery document.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: Uri,
    pub authorization_endpoint: Option<Uri>,
    pub token_endpoint: Option<Uri>,
    pub userinfo_endpoint: Option<Uri>,
    /// `code_challenge_methods_supported` lists `S256` (absent: unknown, assumed).
    pub pkce_s256: bool,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{url}: {source}")]
    Fetch { url: String, source: OutboundError },
    #[error("{url}: not a JSON object")]
    NotJson { url: String },
    #[error("{url}: names issuer {found:?}, not {expected:?}")]
    WrongIssuer {
        url: String,
        found: String,
        expected: String,
    },
    #[error("{url}: {field}: {reason}")]
    BadField {
        url: String,
        field: &'static str,
        reason: String,
    },
}

/// The discovery document's URL for `issuer` (a trailing '/' is not doubled).
pub fn document_url(issuer: &str) -> Result<Uri, String> {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
    .parse()
    .map_err(|e| format!("cannot build the discovery URL: {e}"))
}

/// Fetches and checks `issuer`'s discovery document.
pub async fn discover(issuer: &str) -> Result<ProviderMetadata, DiscoveryError> {
    let url = document_url(issuer).map_err(|reason| DiscoveryError::BadField {
        url: issuer.to_owned(),
        field: "issuer",
        reason,
    })?;
    let fetch = |source| DiscoveryError::Fetch {
        url: url.to_string(),
        source,
    };
    let client = Outbound::for_url(&url).map_err(fetch)?;
    let body = client.get_json(&url, None).await.map_err(fetch)?;
    parse(&url.to_string(), &body, issuer)
}

/// Checks a discovery document's body against the configured `expected` issuer.
pub fn parse(url: &str, body: &[u8], expected: &str) -> Result<ProviderMetadata, DiscoveryError> {
    let doc = strict_json::parse_object(body).map_err(|_| DiscoveryError::NotJson {
        url: url.to_owned(),
    })?;
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != expected {
        return Err(DiscoveryError::WrongIssuer {
            url: url.to_owned(),
            found: found.to_owned(),
            expected: expected.to_owned(),
        });
    }
    let field = |name: &'static str| endpoint(url, &doc, name);
    let pkce_s256 = match doc.get("code_challenge_methods_supported") {
        Some(Value::Array(methods)) => methods.iter().any(|m| m == "S256"),
        _ => true,
    };
    Ok(ProviderMetadata {
        issuer: found.to_owned(),
        jwks_uri: field("jwks_uri")?.ok_or_else(|| DiscoveryError::BadField {
            url: url.to_owned(),
            field: "jwks_uri",
            reason: "missing".to_owned(),
        })?,
        authorization_endpoint: field("authorization_endpoint")?,
        token_endpoint: field("token_endpoint")?,
        userinfo_endpoint: field("userinfo_endpoint")?,
        pkce_s256,
    })
}

/// An optional URL field, which must follow the outbound URL rule when present.
fn endpoint(
    url: &str,
    doc: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Uri>, DiscoveryError> {
    let bad = |reason: String| DiscoveryError::BadField {
        url: url.to_owned(),
        field,
        reason,
    };
    let Some(value) = doc.get(field) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| bad("not a string".to_owned()))?;
    let uri: Uri = text
        .parse()
        .map_err(|_| bad(format!("not a URL: {text:?}")))?;
    outbound_url::check(&uri).map_err(bad)?;
    Ok(Some(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://idp.example.com";

    fn doc(extra: &str) -> Vec<u8> {
        format!(r#"{{"issuer":"{ISS}","jwks_uri":"https://idp.example.com/jwks"{extra}}}"#)
            .into_bytes()
    }

    #[test]
    fn names_the_issuer_and_safe_urls() {
        let m = parse(
            "u",
            &doc(r#","token_endpoint":"https://idp.example.com/token""#),
            ISS,
        )
        .unwrap();
        assert_eq!(m.jwks_uri, "https://idp.example.com/jwks");
        assert!(m.token_endpoint.is_some() && m.authorization_endpoint.is_none());
        assert!(m.pkce_s256);
        assert!(matches!(
            parse("u", &doc(""), "https://other.example.com"),
            Err(DiscoveryError::WrongIssuer { .. })
        ));
        assert!(matches!(
            parse(
                "u",
                &doc(r#","token_endpoint":"http://evil.example.com/t""#),
                ISS
            ),
            Err(DiscoveryError::BadField {
                field: "token_endpoint",
                ..
            })
        ));
        assert!(matches!(
            parse("u", br#"{"issuer":"https://idp.example.com"}"#, ISS),
            Err(DiscoveryError::BadField {
                field: "jwks_uri",
                ..
            })
        ));
        let m = parse(
            "u",
            &doc(r#","code_challenge_methods_supported":["plain"]"#),
            ISS,
        )
        .unwrap();
        assert!(!m.pkce_s256);
        assert_eq!(
            document_url("https://idp.example.com/realms/a/").unwrap(),
            "https://idp.example.com/realms/a/.well-known/openid-configuration"
        );
    }
}
