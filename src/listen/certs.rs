//! TLS: PEM files -> a rustls `ServerConfig` with ALPN h2 + http/1.1, the configured minimum
//! version, session resumption (tickets and a session cache) and 0-RTT off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::{Tls, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read the certificate chain: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("{path}: cannot read the private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{cert} / {key}: the certificate and key do not form a usable pair: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl TlsError {
    /// The file that failed to load (the certificate, for a pair that does not match).
    pub fn file(&self) -> &Path {
        match self {
            TlsError::Cert { path, .. } | TlsError::Key { path, .. } => path,
            TlsError::Pair { cert, .. } => cert,
        }
    }
}

/// Builds the server config from the `[tls]` table. On a reload, `previous` is the running
/// config: its ticket keys and session cache are kept, so clients resume across the reload
/// instead of all paying a full handshake at once.
pub fn server_config(
    tls: &Tls,
    previous: Option<&ServerConfig>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&tls.cert)?;
    let key = load_key(&tls.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let pair_err = |reason: String| TlsError::Pair {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| pair_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| pair_err(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Resumption: stateless tickets plus the default in-memory session cache. 0-RTT stays
    // off (max_early_data_size = 0, the default): early data can be replayed.
    match previous {
        Some(p) => {
            config.ticketer = p.ticketer.clone();
            config.session_storage = p.session_storage.clone();
        }
        None => {
            config.ticketer =
                rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| pair_err(e.to_string()))?;
        }
    }
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
