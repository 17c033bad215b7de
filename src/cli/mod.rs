//! The command line: `serve` (default), `check`, `token`, `keygen`, `user add`. Exit codes: 0 ok, 1 bad
//! config or usage, 2 runtime failure.

pub mod admin_client;
mod check;
pub mod keygen;
mod token;
mod user;

pub use self::check::{check, ensure_dev_material};
pub use self::token::token;
pub use self::user::user_add;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
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
    Serve(ServeArgs),
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
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Do not start the built-in demo upstream (`[demo]`): for a second instance on the same
    /// file, whose routes reach the first one's demo.
    #[arg(long)]
    pub no_demo: bool,
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
