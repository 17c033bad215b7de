//! `gateway user add`: hash a password read from stdin and write the user to Redis.

use std::process::ExitCode;
use std::time::Duration;

use super::*;
use crate::config::{Config, StoreKind};

/// `user add`: hashes the password from stdin and writes the user record to Redis. The memory
/// store is refused: its users live inside one running gateway, and there is no endpoint to
/// add one there (use `auth.registration`, or Redis).
pub async fn user_add(args: &UserAddArgs) -> ExitCode {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match user_add_inner(&config, args).await {
        Ok((name, user_id, replaced)) => {
            let verb = if replaced { "written" } else { "added" };
            eprintln!("user {name} {verb} (user_id {user_id})");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("user add: {message}");
            ExitCode::from(code)
        }
    }
}

/// The folded name, the user id and whether an existing user was replaced.
async fn user_add_inner(
    config: &Config,
    args: &UserAddArgs,
) -> Result<(String, String, bool), (u8, String)> {
    use crate::auth_center::users;
    let usage = |m: String| (1u8, m);
    if config.session.store != StoreKind::Redis {
        return Err(usage(format!(
            "{}: session.store is \"memory\": users there live inside one running gateway and are lost on restart; use store = \"redis\" (or auth.registration = true)",
            config.source.display()
        )));
    }
    let Some(name) = users::fold_username(&args.name) else {
        return Err(usage(format!(
            "{:?}: a username is 1 to {} letters, digits, '.', '_', '-' or '@'",
            args.name,
            users::MAX_USERNAME_BYTES
        )));
    };
    if let Some(bad) = args
        .roles
        .iter()
        .find(|r| r.trim().is_empty() || r.contains(','))
    {
        return Err(usage(format!(
            "--role {bad:?}: a role is non-empty and has no comma"
        )));
    }
    if !args.password_stdin {
        return Err(usage(
            "give the password on stdin with --password-stdin (it is never taken as an argument)"
                .into(),
        ));
    }
    let mut password = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), 64 * 1024),
        &mut password,
    )
    .map_err(|e| (2, format!("reading stdin: {e}")))?;
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password)
        .to_owned();
    if !users::acceptable_password(&password) {
        return Err(usage(format!(
            "the password must have {} to {} bytes",
            users::MIN_PASSWORD_CHARS,
            users::MAX_PASSWORD_BYTES
        )));
    }
    let hash = tokio::task::spawn_blocking(move || users::hash_password(password.as_bytes()))
        .await
        .map_err(|e| (2, e.to_string()))?
        .map_err(|e| (2, e))?;
    let store = crate::auth::session::SessionStore::connect(&config.session)
        .await
        .map_err(|e| (2, e.to_string()))?;
    // The connection is made in the background: give it a few seconds.
    let mut up = store.ping().await;
    for _ in 0..20 {
        if up.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        up = store.ping().await;
    }
    up.map_err(|e| (2, e.to_string()))?;
    // A replaced user keeps its id (its sessions, and whatever backends keyed on it).
    let existing = if args.replace {
        store
            .get_user(&name)
            .await
            .map_err(|e| (2, e.to_string()))?
    } else {
        None
    };
    let user_id = existing.map_or_else(users::new_user_id, |u| u.user_id);
    let user = crate::auth::session::UserRecord {
        user_id: user_id.clone(),
        password_hash: hash,
        roles: args.roles.iter().map(|r| r.trim().to_owned()).collect(),
    };
    let written = store
        .put_user(&name, &user, args.replace)
        .await
        .map_err(|e| (2, e.to_string()))?;
    if !written {
        return Err((
            1,
            format!("user {name} exists (use --replace to overwrite it)"),
        ));
    }
    Ok((name, user_id, args.replace))
}
