//! `gateway token`: mint an access token and create its session (in Redis directly, or
//! through the admin listener for the memory store, which lives inside the running gateway).

use std::process::ExitCode;
use std::time::Duration;

use super::*;
use crate::config::{self, Config, StoreKind};

/// `token`: mint, then create the session (directly in Redis, or through the admin listener
/// for the memory store, which lives inside the running gateway).
pub async fn token(args: &TokenArgs) -> ExitCode {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(auth) = &config.auth else {
        eprintln!(
            "{}: auth: `gateway token` needs the [auth] table (auth.signing_key)",
            config.source.display()
        );
        return ExitCode::from(1);
    };
    let ttl = match &args.ttl {
        None => auth.access_ttl,
        Some(s) => match config::parse_duration(s) {
            Ok(d) if d > Duration::ZERO => d,
            Ok(_) => {
                eprintln!("--ttl: must be above zero");
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("--ttl: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if args.sub.is_empty() {
        eprintln!("--sub: must not be empty");
        return ExitCode::from(1);
    }
    let signer = match crate::auth::mint::Signer::from_config(auth) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: auth.signing_key: {e}", config.source.display());
            return ExitCode::from(1);
        }
    };
    let sid = args
        .sid
        .clone()
        .unwrap_or_else(|| crate::http::request_id::generate().to_string());
    let claims = crate::auth::mint::MintClaims {
        issuer: &config.jwt.issuer,
        audience: &config.jwt.audience,
        user_id_claim: &config.jwt.user_id_claim,
        user_id: &args.sub,
        session_claim: &config.jwt.session_claim,
        session_id: &sid,
        roles_claim: &config.jwt.roles_claim,
        roles: &args.roles,
        ttl,
    };
    let token = match signer.mint(&claims) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot mint the token: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.no_session {
        let roles = (!args.roles.is_empty()).then(|| args.roles.clone());
        match create_session(&config, &sid, &args.sub, roles, ttl).await {
            Ok(SessionMade::Created) => eprintln!(
                "session {sid} created for {} ({}s)",
                args.sub,
                ttl.as_secs()
            ),
            Ok(SessionMade::Kept) => eprintln!(
                "session {sid} of {} exists: left as it is (its roles and lifetime apply)",
                args.sub
            ),
            Err((code, e)) => {
                eprintln!("cannot create session {sid}: {e}");
                return ExitCode::from(code);
            }
        }
    }
    println!("{token}");
    ExitCode::SUCCESS
}

/// What `gateway token` did about the session.
enum SessionMade {
    Created,
    /// One of the same user had this id: left exactly as it is (its roles apply).
    Kept,
}

/// `user_id` of session `sid` through the admin listener (`GET /sessions/{sid}`).
async fn session_owner(admin: std::net::SocketAddr, sid: &str, token: &[u8]) -> Option<String> {
    let path = format!("/sessions/{sid}");
    let (status, body) =
        crate::cli::admin_client::request(admin, http::Method::GET, &path, Some(token), None)
            .await
            .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .ok()
        .filter(|_| status.is_success())?;
    v["user_id"].as_str().map(str::to_owned)
}

/// Creates the session unless one has this id; then nothing changes, and one of the same user
/// is used as it is. The error carries the exit code: 1 for what the user can fix (the id is
/// another user's, `[admin]` missing), 2 otherwise.
async fn create_session(
    config: &Config,
    sid: &str,
    user_id: &str,
    roles: Option<Vec<String>>,
    ttl: Duration,
) -> Result<SessionMade, (u8, String)> {
    let taken = || {
        (
            1,
            "a session of another user has this id (it was left as it is); give another --sid (or none for a random one)".to_owned(),
        )
    };
    match config.session.store {
        StoreKind::Redis => {
            let store = crate::auth::session::SessionStore::connect(&config.session)
                .await
                .map_err(|e| (2, e.to_string()))?;
            let new = crate::auth::session::NewSession {
                sid: sid.to_owned(),
                user_id: user_id.to_owned(),
                roles,
                created_at: crate::clock::unix_now(),
                ip: None,
                user_agent: None,
                device_id: None,
                claims: Vec::new(),
            };
            match store.create_if_absent(&new, ttl).await {
                Ok(true) => Ok(SessionMade::Created),
                Ok(false) => match store.get(sid).await {
                    Ok(Some(r)) if r.user_id == user_id => Ok(SessionMade::Kept),
                    Ok(_) => Err(taken()),
                    Err(e) => Err((2, e.to_string())),
                },
                Err(e) => Err((2, e.to_string())),
            }
        }
        StoreKind::Memory => {
            let Some(admin) = config.listen.admin else {
                return Err((1, "the memory store lives in the running gateway; configure listen.admin and [admin] so `gateway token` can reach it".into()));
            };
            let Some(admin_table) = &config.admin else {
                return Err((1, format!("{}: the memory store lives in the running gateway, whose session endpoints need [admin] (token_env, token_file)", config.source.display())));
            };
            let Some(token) = &admin_table.token else {
                let file = admin_table
                    .token_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                return Err((1, format!("no admin token yet: {file} is written when the gateway first starts (or set {})", admin_table.token_env)));
            };
            let body = crate::admin::sessions::CreateSession {
                session_id: sid.to_owned(),
                user_id: user_id.to_owned(),
                roles,
                ttl: ttl.as_secs().max(1),
            };
            let path = "/sessions";
            match crate::cli::admin_client::post_json(admin, path, &body, Some(token.expose()))
                .await
            {
                Ok(()) => Ok(SessionMade::Created),
                Err(crate::cli::admin_client::AdminCallError::Status { status, .. })
                    if status == http::StatusCode::CONFLICT =>
                {
                    let owner = session_owner(admin, sid, token.expose()).await;
                    if owner.as_deref() == Some(user_id) {
                        Ok(SessionMade::Kept)
                    } else {
                        Err(taken())
                    }
                }
                Err(e @ crate::cli::admin_client::AdminCallError::Status { status, .. })
                    if status == http::StatusCode::UNAUTHORIZED =>
                {
                    Err((
                        1,
                        format!(
                            "{e} (the token in ${} or {} is not the running gateway's)",
                            admin_table.token_env,
                            admin_table
                                .token_file
                                .as_deref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default()
                        ),
                    ))
                }
                Err(e) => Err((2, e.to_string())),
            }
        }
    }
}
