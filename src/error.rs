//! Every way the gateway itself answers a request, mapped to one status and one JSON body in
//! one place. The detailed reason goes to the log (and later a metric label), never to the
//! client: bodies carry a stable code and a plain message, never a token or internals.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::http::body::{self, Body};

/// Why the gateway answered instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("ambiguous or malformed path: {0}")]
    BadPath(#[from] crate::http::path::PathError),
    #[error("missing, repeated or disagreeing Host")]
    BadHost,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("no route")]
    NoRoute,
    /// A session the caller may not see (another user's) or that does not exist: one answer
    /// for both, so a kick cannot probe for other users' session ids.
    #[error("no such session")]
    NoSuchSession,
    /// The admin API's create of a session id that exists (nothing is changed).
    #[error("session exists")]
    SessionExists,
    #[error("method not allowed")]
    MethodNotAllowed { allow: Option<HeaderValue> },
    #[error("no token")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    #[error("session store unavailable: {0}")]
    StoreUnavailable(#[from] crate::auth::session::StoreError),
    #[error("role missing")]
    InsufficientRole,
    #[error("request body too large")]
    BodyTooLarge,
    /// The upstream refused, reset or broke the exchange; `source` says how (kept for the log,
    /// never sent to the client).
    #[error("upstream {upstream}: {source}")]
    UpstreamUnavailable {
        upstream: String,
        source: crate::http::body::BoxError,
    },
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("internal error: {0}")]
    Internal(String),
    /// A request the auth center cannot read: bad JSON, an unknown field, a bad value.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Login refused: unknown user or wrong password (the same answer for both).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that gives nothing: unknown, used, exhausted, expired, or bound elsewhere.
    #[error("invalid refresh token: {0}")]
    InvalidRefreshToken(&'static str),
    /// Too many failed logins for a username or an address; retry after this many seconds.
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after: u64 },
    /// An auth-center `POST` whose body is not declared `application/json` (a form or
    /// `text/plain` body is what a cross-site page can make a browser send).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A cookie-authenticated auth-center call from a page of another origin.
    #[error("Origin is not the gateway's own")]
    OriginMismatch,
    /// Every password-hashing slot and its queue are taken; retry shortly.
    #[error("password hashing overloaded")]
    Overloaded,
    /// Registration of a name that is taken.
    #[error("user exists")]
    UserExists,
    /// An OpenID login that cannot complete: no or another browser's login state, a changed
    /// `state`, a replayed or refused code, a bad ID token (the label says which).
    #[error("OpenID login refused: {0}")]
    LoginRefused(&'static str),
    /// A back-channel logout token that is not valid (the label says why); nothing revoked.
    #[error("logout token refused: {0}")]
    LogoutTokenRefused(&'static str),
    /// The OpenID provider could not be reached or answered nonsense.
    #[error("OpenID provider: {0}")]
    ProviderUnavailable(String),
}

/// The one mapping of an authentication or authorization failure to its answer.
impl From<crate::auth::AuthError> for GatewayError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Missing => GatewayError::MissingToken,
            AuthError::Invalid(reason) => GatewayError::InvalidToken(reason),
            AuthError::Store(e) => GatewayError::StoreUnavailable(e),
            AuthError::Forbidden { .. } => GatewayError::InsufficientRole,
        }
    }
}

impl GatewayError {
    /// Counts it in `metrics`: an upstream failure by route and kind, anything else as a
    /// denial by its reason.
    pub fn observe(&self, metrics: &crate::observe::metrics::Metrics, route: &std::sync::Arc<str>) {
        match self {
            GatewayError::UpstreamUnavailable { .. } => {
                metrics.observe_upstream_error(route, "error")
            }
            GatewayError::UpstreamTimeout => metrics.observe_upstream_error(route, "timeout"),
            _ => metrics.observe_denial(self.reason()),
        }
    }

    /// The status for each case; no catch-all arm, so a new variant forces a decision.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadPath(_) | GatewayError::BadHost => StatusCode::BAD_REQUEST,
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::NoRoute | GatewayError::NoSuchSession => StatusCode::NOT_FOUND,
            GatewayError::SessionExists => StatusCode::CONFLICT,
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::MissingToken | GatewayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            GatewayError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::InsufficientRole => StatusCode::FORBIDDEN,
            GatewayError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::InvalidCredentials | GatewayError::InvalidRefreshToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            GatewayError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::OriginMismatch => StatusCode::FORBIDDEN,
            GatewayError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::UserExists => StatusCode::CONFLICT,
            GatewayError::LoginRefused(_) | GatewayError::LogoutTokenRefused(_) => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadPath(_) => "bad_path",
            GatewayError::BadHost => "bad_host",
            GatewayError::HeadersTooLarge => "headers_too_large",
            GatewayError::NoRoute | GatewayError::NoSuchSession => "not_found",
            GatewayError::SessionExists => "conflict",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::MissingToken => "missing_token",
            GatewayError::InvalidToken(_) => "invalid_token",
            GatewayError::StoreUnavailable(_) => "session_store_unavailable",
            GatewayError::InsufficientRole => "insufficient_scope",
            GatewayError::BodyTooLarge => "body_too_large",
            GatewayError::UpstreamUnavailable { .. } => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::Internal(_) => "internal_error",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::InvalidCredentials => "invalid_credentials",
            GatewayError::InvalidRefreshToken(_) => "invalid_grant",
            GatewayError::TooManyAttempts { .. } => "too_many_attempts",
            GatewayError::UnsupportedMediaType => "unsupported_media_type",
            GatewayError::OriginMismatch => "origin_mismatch",
            GatewayError::Overloaded => "overloaded",
            GatewayError::UserExists => "username_taken",
            GatewayError::LoginRefused(_) => "login_failed",
            GatewayError::LogoutTokenRefused(_) => "invalid_request",
            GatewayError::ProviderUnavailable(_) => "provider_unavailable",
        }
    }

    /// What a person reads: plain, never the token or a cause chain.
    fn message(&self) -> &'static str {
        match self {
            GatewayError::BadPath(_) => "the request path is malformed or ambiguous",
            GatewayError::BadHost => "the request needs exactly one Host",
            GatewayError::HeadersTooLarge => "the request headers are too large",
            GatewayError::NoRoute => "no route matches this request",
            GatewayError::NoSuchSession => "no such session",
            GatewayError::SessionExists => "a session with this id exists; nothing was changed",
            GatewayError::MethodNotAllowed { .. } => "this method is not allowed on this route",
            GatewayError::MissingToken => "a bearer token is required",
            GatewayError::InvalidToken(_) => "the token is invalid, expired or revoked",
            GatewayError::StoreUnavailable(_) => "the session store is unavailable; retry shortly",
            GatewayError::InsufficientRole => "the token lacks a role this route requires",
            GatewayError::BodyTooLarge => "the request body is too large",
            GatewayError::UpstreamUnavailable { .. } => "the upstream service is unavailable",
            GatewayError::UpstreamTimeout => "the upstream service did not answer in time",
            GatewayError::Internal(_) => "internal error",
            GatewayError::BadRequest(_) => "the request body is not what this endpoint takes",
            GatewayError::InvalidCredentials => "the username or password is wrong",
            GatewayError::InvalidRefreshToken(_) => {
                "the refresh token is invalid, expired or revoked; log in again"
            }
            GatewayError::TooManyAttempts { .. } => "too many failed attempts; retry later",
            GatewayError::UnsupportedMediaType => "the request body must be application/json",
            GatewayError::OriginMismatch => "this request's Origin is not this gateway",
            GatewayError::Overloaded => "the gateway is busy; retry shortly",
            GatewayError::UserExists => "this username is taken",
            GatewayError::LoginRefused(_) => {
                "this sign-in cannot be completed; start it again from the beginning"
            }
            GatewayError::LogoutTokenRefused(_) => "the logout token is not valid",
            GatewayError::ProviderUnavailable(_) => "the identity provider is unavailable",
        }
    }

    /// A short label for the access log and metrics (more detailed than `code`).
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::InvalidToken(reason)
            | GatewayError::InvalidRefreshToken(reason)
            | GatewayError::BadRequest(reason)
            | GatewayError::LoginRefused(reason)
            | GatewayError::LogoutTokenRefused(reason) => reason,
            other => other.code(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": self.code(), "message": self.message() });
        let mut resp = body::json(self.status(), &body);
        let h = resp.headers_mut();
        match self {
            GatewayError::MissingToken => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gateway""#),
                );
            }
            GatewayError::InvalidToken(_) => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gateway", error="invalid_token""#),
                );
            }
            GatewayError::InsufficientRole => {
                h.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="gateway", error="insufficient_scope""#,
                    ),
                );
            }
            GatewayError::StoreUnavailable(_) | GatewayError::Overloaded => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            GatewayError::MethodNotAllowed { allow: Some(allow) } => {
                h.insert(http::header::ALLOW, allow);
            }
            GatewayError::TooManyAttempts { retry_after } => {
                h.insert(RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn statuses_and_headers() {
        let cases: Vec<(GatewayError, u16, Option<&str>)> = vec![
            (GatewayError::NoRoute, 404, None),
            (GatewayError::NoSuchSession, 404, None),
            (GatewayError::SessionExists, 409, None),
            (GatewayError::BadHost, 400, None),
            (
                GatewayError::MissingToken,
                401,
                Some(r#"Bearer realm="gateway""#),
            ),
            (
                GatewayError::InvalidToken("expired"),
                401,
                Some(r#"Bearer realm="gateway", error="invalid_token""#),
            ),
            (
                GatewayError::InsufficientRole,
                403,
                Some(r#"Bearer realm="gateway", error="insufficient_scope""#),
            ),
            (GatewayError::BodyTooLarge, 413, None),
            (GatewayError::HeadersTooLarge, 431, None),
            (
                GatewayError::UpstreamUnavailable {
                    upstream: "127.0.0.1:9".into(),
                    source: "refused".into(),
                },
                502,
                None,
            ),
            (GatewayError::UpstreamTimeout, 504, None),
            (GatewayError::BadRequest("unknown_field"), 400, None),
            (GatewayError::InvalidCredentials, 401, None),
            (GatewayError::InvalidRefreshToken("reused"), 401, None),
            (GatewayError::UserExists, 409, None),
            (GatewayError::UnsupportedMediaType, 415, None),
            (GatewayError::OriginMismatch, 403, None),
            (GatewayError::Overloaded, 503, None),
        ];
        for (err, status, www) in cases {
            let code = err.code();
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(
                resp.headers()
                    .get(WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap()),
                www
            );
            let body = body_json(resp).await;
            assert_eq!(body["error"], code);
            assert!(body["message"].is_string());
        }
    }

    #[tokio::test]
    async fn store_unavailable_has_retry_after() {
        let err = GatewayError::StoreUnavailable(crate::auth::session::StoreError::Timeout);
        let resp = err.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn too_many_attempts_has_retry_after() {
        let resp = GatewayError::TooManyAttempts { retry_after: 42 }.into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[RETRY_AFTER], "42");
        assert_eq!(body_json(resp).await["error"], "too_many_attempts");
    }

    #[tokio::test]
    async fn body_never_carries_details() {
        let err = GatewayError::UpstreamUnavailable {
            upstream: "10.0.0.1:9".into(),
            source: "connect secret".into(),
        };
        let body = body_json(err.into_response()).await.to_string();
        assert!(!body.contains("10.0.0.1"));
    }
}
