//! Our own check of a token's claims, on the duplicate-free JSON object. It is stricter than
//! jsonwebtoken's (which runs first, as a second lock): `iss` must be one string, time claims
//! integers, and the identity claims strings that are safe to copy into a header and a Redis key.

use serde_json::{Map, Value};

use super::{TokenError, VerifiedToken};

/// Longest user id or session id accepted, in bytes.
const MAX_ID_LEN: usize = 512;
/// Longest single role, in bytes.
const MAX_ROLE_LEN: usize = 128;
/// Most roles accepted in one token.
const MAX_ROLES: usize = 128;
/// Longest claim value passed upstream as a header, in bytes.
const MAX_HEADER_TEXT: usize = 1024;

/// What the claims must say; built once from `[jwt]`.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    /// [`VerifiedToken::issuer`].
    pub(crate) index: usize,
    /// `"<name>:"` for an external issuer: put before the user id.
    pub(crate) user_prefix: Option<String>,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// Seconds.
    pub(crate) leeway: u64,
    pub(crate) user_id_claim: String,
    /// `None`: the issuer's tokens need no session; no claim is read.
    pub(crate) session_claim: Option<String>,
    pub(crate) roles_claim: String,
    /// Claims copied into [`VerifiedToken::claims`].
    pub(crate) kept_claims: Vec<String>,
}

impl ClaimRules {
    /// Checks every claim against `now` (Unix seconds), in a fixed order so that a token with
    /// several faults always gets the same reason.
    pub(crate) fn check(
        &self,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        let exp = self.check_registered(claims, now)?;
        let mut user_id = identifier(claims.get(&self.user_id_claim), "user_id")?;
        if let Some(prefix) = &self.user_prefix {
            user_id.insert_str(0, prefix);
        }
        let session_id = match &self.session_claim {
            Some(claim) => Some(identifier(claims.get(claim), "session_id")?),
            None => None,
        };
        let roles = roles(claims.get(&self.roles_claim))?;
        let kept = self
            .kept_claims
            .iter()
            .filter_map(|name| Some((name.clone(), header_text(claims.get(name)?)?)))
            .collect();
        Ok(VerifiedToken {
            issuer: self.index,
            user_id,
            session_id,
            roles,
            expires_at: exp,
            claims: kept,
            headers: Default::default(),
        })
    }

    /// The registered claims: `exp` (required), `nbf`, `iat`, `iss`, `aud`. Returns `exp`.
    pub(crate) fn check_registered(
        &self,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<u64, TokenError> {
        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
        if exp.saturating_add(self.leeway) < now {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if nbf > now.saturating_add(self.leeway) {
                return Err(TokenError::NotYetValid);
            }
        }
        numeric_date(claims, "iat")?;

        match claims.get("iss") {
            None => return Err(TokenError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(_) => return Err(TokenError::Issuer),
        }
        self.check_audience(claims.get("aud"))?;
        Ok(exp)
    }

    fn check_audience(&self, aud: Option<&Value>) -> Result<(), TokenError> {
        match aud {
            None => Err(TokenError::MissingClaim("aud")),
            Some(Value::String(a)) if *a == self.audience => Ok(()),
            Some(Value::String(_)) => Err(TokenError::Audience),
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    match item {
                        Value::String(a) => found |= *a == self.audience,
                        _ => return Err(TokenError::BadClaim("aud")),
                    }
                }
                if found {
                    Ok(())
                } else {
                    Err(TokenError::Audience)
                }
            }
            Some(_) => Err(TokenError::BadClaim("aud")),
        }
    }
}

/// A claim as header text: a string as it is, a number or boolean as JSON writes it, an
/// array of strings joined with ',' (none of which may hold a ','). Anything else (objects, nested arrays, null) is left
/// out; so is text with a control character (it could split a header).
pub(crate) fn header_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            // Joined with ',': an item holding one would read as two.
            let parts: Option<Vec<&str>> = items
                .iter()
                .map(|v| v.as_str().filter(|s| !s.contains(',')))
                .collect();
            parts?.join(",")
        }
        Value::Null | Value::Object(_) => return None,
    };
    let safe = text.len() <= MAX_HEADER_TEXT && !text.chars().any(char::is_control);
    safe.then_some(text)
}

/// A NumericDate claim: absent, or a non-negative integer.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(TokenError::BadClaim(name)),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// A user or session id: a non-empty string without control characters.
pub(crate) fn identifier(value: Option<&Value>, label: &'static str) -> Result<String, TokenError> {
    match value {
        None => Err(TokenError::MissingClaim(label)),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(s.clone())
        }
        Some(_) => Err(TokenError::BadClaim(label)),
    }
}

/// Roles: absent (none), an array of strings, or one space/comma separated string. A role
/// never holds a comma, space or control character, since roles travel comma-joined in a header.
pub(crate) fn roles(value: Option<&Value>) -> Result<Vec<String>, TokenError> {
    let bad = TokenError::BadClaim("roles");
    let roles: Vec<String> = match value {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(bad.clone()))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad),
    };
    let role_ok = |r: &String| {
        !r.is_empty()
            && r.len() <= MAX_ROLE_LEN
            && !r
                .chars()
                .any(|c| c == ',' || c.is_whitespace() || c.is_control())
    };
    if roles.len() > MAX_ROLES || !roles.iter().all(role_ok) {
        return Err(bad);
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        ClaimRules {
            index: 0,
            user_prefix: None,
            issuer: "gw".into(),
            audience: "api".into(),
            leeway: 30,
            user_id_claim: "sub".into(),
            session_claim: Some("sid".into()),
            roles_claim: "roles".into(),
            kept_claims: vec!["email".into(), "n".into(), "groups".into(), "obj".into()],
        }
    }

    fn check(v: Value) -> Result<VerifiedToken, TokenError> {
        let Value::Object(m) = v else { panic!() };
        rules().check(&m, 1_000_000)
    }

    fn base() -> Value {
        json!({"iss":"gw","aud":"api","exp":1_000_100,"sub":"u1","sid":"s1"})
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    fn without(k: &str) -> Value {
        let mut b = base();
        b.as_object_mut().unwrap().remove(k);
        b
    }

    #[test]
    fn good_claims() {
        let t = check(base()).unwrap();
        assert_eq!(
            (t.user_id.as_str(), t.session_id.as_deref()),
            ("u1", Some("s1"))
        );
        assert!(t.roles.is_empty());
        assert_eq!(t.expires_at, 1_000_100);
    }

    #[test]
    fn external_issuer_prefix_no_session_and_kept_claims() {
        let rules = ClaimRules {
            index: 2,
            user_prefix: Some("corp:".into()),
            session_claim: None,
            ..rules()
        };
        let Value::Object(m) = json!({"iss":"gw","aud":"api","exp":1_000_100,"sub":"svc",
            "email":"a@b.c","n":7,"groups":["x","y"],"obj":{"a":1},"other":"no"})
        else {
            panic!()
        };
        let t = rules.check(&m, 1_000_000).unwrap();
        assert_eq!(t.issuer, 2);
        assert_eq!(t.user_id, "corp:svc");
        assert_eq!(t.session_id, None);
        let kept: Vec<(&str, &str)> = t
            .claims
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(kept, [("email", "a@b.c"), ("n", "7"), ("groups", "x,y")]);
        assert_eq!(header_text(&json!("a\r\nb")), None);
        assert_eq!(header_text(&json!(["a", 1])), None);
        assert_eq!(header_text(&json!(["t-42,t-admin"])), None);
        assert_eq!(header_text(&json!(true)).as_deref(), Some("true"));
    }

    #[test]
    fn roles_forms() {
        let t = check(with("roles", json!(["a", "b"]))).unwrap();
        assert_eq!(t.roles, ["a", "b"]);
        let t = check(with("roles", json!("a b,c ,, d"))).unwrap();
        assert_eq!(t.roles, ["a", "b", "c", "d"]);
        for bad in [
            json!(["a,b"]),
            json!([1]),
            json!(["a b"]),
            json!([""]),
            json!(7),
            json!(null),
        ] {
            assert_eq!(
                check(with("roles", bad)),
                Err(TokenError::BadClaim("roles"))
            );
        }
    }

    #[test]
    fn time_claims() {
        assert_eq!(check(with("exp", json!(999_969))), Err(TokenError::Expired));
        assert!(check(with("exp", json!(999_970))).is_ok());
        assert_eq!(
            check(with("exp", json!(1.5))),
            Err(TokenError::BadClaim("exp"))
        );
        assert_eq!(
            check(with("exp", json!(-1))),
            Err(TokenError::BadClaim("exp"))
        );
        assert_eq!(
            check(with("nbf", json!(1_000_031))),
            Err(TokenError::NotYetValid)
        );
        assert!(check(with("nbf", json!(1_000_030))).is_ok());
        assert_eq!(
            check(with("nbf", json!("0"))),
            Err(TokenError::BadClaim("nbf"))
        );
        assert_eq!(
            check(with("iat", json!("0"))),
            Err(TokenError::BadClaim("iat"))
        );
        assert_eq!(check(without("exp")), Err(TokenError::MissingClaim("exp")));
    }

    #[test]
    fn identity_claims() {
        assert_eq!(
            check(with("sub", json!("a\nb"))),
            Err(TokenError::BadClaim("user_id"))
        );
        assert_eq!(
            check(with("sid", json!(""))),
            Err(TokenError::BadClaim("session_id"))
        );
        assert_eq!(
            check(with("sid", json!(["s"]))),
            Err(TokenError::BadClaim("session_id"))
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            check(with("sub", json!(long))),
            Err(TokenError::BadClaim("user_id"))
        );
    }

    #[test]
    fn audience_forms() {
        assert!(check(with("aud", json!(["x", "api"]))).is_ok());
        assert_eq!(check(with("aud", json!(["x"]))), Err(TokenError::Audience));
        assert_eq!(check(with("aud", json!([])),), Err(TokenError::Audience));
        assert_eq!(
            check(with("aud", json!(["api", 1]))),
            Err(TokenError::BadClaim("aud"))
        );
        assert_eq!(
            check(with("aud", json!({"a": "api"}))),
            Err(TokenError::BadClaim("aud"))
        );
    }
}
