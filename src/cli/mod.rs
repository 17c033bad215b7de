//! The command line: `serve` (default), `check`, `token`, `keygen`, `user add`. Exit codes: 0 ok, 1 bad
//! config or usage, 2 runtime failure.

pub mod admin_client;
pub mod keygen;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, KeyMaterial, SigningKey, StoreKind};
use crate::observe::logs::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "TLS-terminating reverse-proxy auth gateway"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default command).
    Serve(ConfigArg),
    /// Validate the config and the files it names; print every error with file:line:col.
    Check(ConfigArg),
    /// Mint a signed access token with the configured signing key, and create its session.
    Token(TokenArgs),
    /// Write a self-signed TLS certificate for localhost and a fresh token-signing key pair.
    Keygen(KeygenArgs),
    /// Manage the auth center's users (in Redis).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user: `{P}user:{name}` with an argon2id hash of the password read from stdin.
    Add(UserAddArgs),
}

#[derive(Debug, clap::Args)]
pub struct UserAddArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The username (letters, digits, '.', '_', '-', '@'; at most 64), kept NFKC-casefolded.
    /// The user id is generated (a random UUID), never the name.
    pub name: String,
    /// A role; repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Read the password from stdin (one line; the trailing newline is dropped).
    #[arg(long)]
    pub password_stdin: bool,
    /// Replace the user if it exists (a new password and roles; its user id is kept).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, clap::Args, Default)]
pub struct ConfigArg {
    /// Config file. Without it: ./gateway.toml if present, else the embedded default.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The user id (the `sub` claim, or whatever `jwt.user_id_claim` names).
    #[arg(long)]
    pub sub: String,
    /// A role; repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Session id; a random one when absent.
    #[arg(long)]
    pub sid: Option<String>,
    /// Lifetime, e.g. "15m" (default: auth.access_ttl).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Only mint the token; do not create its session in the store.
    #[arg(long)]
    pub no_session: bool,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Directory to write gateway.crt, gateway.key, signing.pem, signing.pub.pem into.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Loads the config named by `--config`, else ./gateway.toml, else the embedded default.
pub fn load_config(arg: &ConfigArg) -> Result<Config, ExitCode> {
    let loaded = match &arg.config {
        Some(path) => config::load(path),
        None if Path::new("gateway.toml").exists() => config::load(Path::new("gateway.toml")),
        None => config::load_str(config::EMBEDDED_DEFAULT, Path::new(config::EMBEDDED_SOURCE)),
    };
    loaded.map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in the configuration", errors.0.len());
        ExitCode::from(1)
    })
}

/// `check`: the config, then every file it names, the way `serve` would load them.
pub async fn check(arg: &ConfigArg) -> ExitCode {
    let config = match load_config(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Every file the config names is tried, so one unreadable file does not hide the next;
    // each failure is reported at the key that names it.
    let places = &config.places;
    let mut errors = Vec::new();
    if let Err(e) = crate::listen::certs::server_config(&config.tls, None) {
        if !(config.tls.self_signed_if_missing
            && !config.tls.cert.exists()
            && !config.tls.key.exists())
        {
            errors.push(places.at_file(e.file(), e.to_string()));
        }
    }
    let dev_keys_pending = config.tls.self_signed_if_missing && signing_files_missing(&config);
    if !dev_keys_pending {
        if let Err(e) = crate::auth::jwt::Verifier::new(&config.jwt).await {
            errors.push(e.in_config(places));
        }
        if let Some(auth) = &config.auth {
            if let Err(e) = crate::auth::mint::Signer::from_config(auth) {
                errors.push(e.in_config(places));
            }
        }
    }
    if errors.is_empty() {
        println!(
            "{}: ok ({} routes)",
            config.source.display(),
            config.routes.len()
        );
        ExitCode::SUCCESS
    } else {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("{} error(s) in the configuration", errors.len());
        ExitCode::from(1)
    }
}

/// True when every signing-related key file the config names is absent (a fresh checkout).
fn signing_files_missing(config: &Config) -> bool {
    let mut files: Vec<&Path> = config
        .jwt
        .keys
        .iter()
        .filter_map(|k| match &k.material {
            KeyMaterial::PublicKeyFile(p) => Some(p.as_path()),
            KeyMaterial::Secret { .. } => None,
        })
        .collect();
    if let Some(SigningKey::PrivateKeyFile(p)) = config.auth.as_ref().map(|a| &a.signing_key) {
        files.push(p);
    }
    !files.is_empty() && files.iter().all(|p| !p.exists())
}

/// With `tls.self_signed_if_missing`, writes development material that is absent: the TLS
/// pair, the Ed25519 signing pair when the config names one private and one public file, and
/// the admin token file (`[admin] token_file`, when its variable is unset), which it then
/// puts in `config`.
pub fn ensure_dev_material(config: &mut Config) -> Result<(), String> {
    if let Some(admin) = config.admin.as_mut() {
        if let (None, Some(path), true) = (
            &admin.token,
            &admin.token_file,
            config.tls.self_signed_if_missing,
        ) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            admin.token =
                Some(crate::cli::keygen::write_admin_token(path).map_err(|e| e.to_string())?);
            tracing::warn!(file = %path.display(), "wrote a development admin token (0600)");
        }
    }
    let config = &*config;
    if !config.tls.self_signed_if_missing {
        return Ok(());
    }
    let tls = &config.tls;
    let mkdir = |path: &Path| match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
        }
        _ => Ok(()),
    };
    if !tls.cert.exists() && !tls.key.exists() {
        mkdir(&tls.cert)?;
        mkdir(&tls.key)?;
        crate::cli::keygen::write_tls_pair(&tls.cert, &tls.key).map_err(|e| e.to_string())?;
        tracing::warn!(cert = %tls.cert.display(), "wrote a self-signed development certificate");
    }
    if signing_files_missing(config) {
        let private = match config.auth.as_ref().map(|a| &a.signing_key) {
            Some(SigningKey::PrivateKeyFile(p)) => p.clone(),
            _ => return Ok(()),
        };
        let public: Vec<&PathBuf> = config
            .jwt
            .keys
            .iter()
            .filter_map(|k| match &k.material {
                KeyMaterial::PublicKeyFile(p) => Some(p),
                KeyMaterial::Secret { .. } => None,
            })
            .collect();
        if let [public] = public.as_slice() {
            mkdir(&private)?;
            mkdir(public)?;
            crate::cli::keygen::write_signing_pair(&private, public).map_err(|e| e.to_string())?;
            tracing::warn!(key = %private.display(), "wrote a development token-signing key pair");
        }
    }
    Ok(())
}

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

pub fn keygen(args: &KeygenArgs) -> ExitCode {
    match crate::cli::keygen::write_dev_material(&args.dir, args.force) {
        Ok(out) => {
            for (what, path) in [
                ("TLS certificate", &out.cert),
                ("TLS private key", &out.key),
                ("token-signing private key", &out.signing_private),
                ("token-signing public key", &out.signing_public),
            ] {
                println!("{what}: {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keygen: {e}");
            ExitCode::from(2)
        }
    }
}
