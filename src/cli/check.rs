//! `gateway check`: the config, then every file it names, the way `serve` loads them; and
//! the development material `serve` writes on first start with `tls.self_signed_if_missing`.

use std::path::Path;
use std::process::ExitCode;

use super::*;
use crate::config::{Config, KeyMaterial, SigningKey};

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
    if config.session.store == crate::config::StoreKind::Redis {
        if let Some(ca) = &config.session.redis.ca {
            if let Err(crate::auth::session::StoreError::Ca { file, reason }) =
                crate::auth::session::read_ca(ca)
            {
                errors.push(places.at_file(&file, reason));
            }
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
