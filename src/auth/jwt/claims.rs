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

/// What the claims must say; built once from `[jwt]`.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// Seconds.
    pub(crate) leeway: u64,
    pub(crate) user_id_claim: String,
    pub(crate) session_claim: String,
    pub(crate) roles_claim: String,
}

impl ClaimRules {
    /// Checks every claim against `now` (Unix seconds), in a fixed order so that a token with
    /// several faults always gets the same reason.
    pub(crate) fn check(
        &self,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
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

        let user_id = identifier(claims.get(&self.user_id_claim), "user_id")?;
        let session_id = identifier(claims.get(&self.session_claim), "session_id")?;
        let roles = roles(claims.get(&self.roles_claim))?;
        Ok(VerifiedToken {
            user_id,
            session_id,
            roles,
            expires_at: exp,
        })
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
fn identifier(value: Option<&Value>, label: &'static str) -> Result<String, TokenError> {
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
fn roles(value: Option<&Value>) -> Result<Vec<String>, TokenError> {
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
            issuer: "gw".into(),
            audience: "api".into(),
            leeway: 30,
            user_id_claim: "sub".into(),
            session_claim: "sid".into(),
            roles_claim: "roles".into(),
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
        assert_eq!((t.user_id.as_str(), t.session_id.as_str()), ("u1", "s1"));
        assert!(t.roles.is_empty());
        assert_eq!(t.expires_at, 1_000_100);
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
