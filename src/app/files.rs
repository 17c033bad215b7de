//! The files a running config depends on (the config itself, the certificate and key, the
//! JWT keys, the signing key) and a fingerprint of their contents, so the reload watcher can
//! tell when one changed.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::config::{self, Config, KeyMaterial, SigningKey};

/// A hash of each watched file's contents (`None`: unreadable or absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints(BTreeMap<PathBuf, Option<u64>>);

impl Fingerprints {
    pub(crate) fn of(config: &Config) -> Fingerprints {
        Fingerprints(
            watched_files(config)
                .into_iter()
                .map(|p| {
                    let h = std::fs::read(&p).ok().map(|bytes| {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        bytes.hash(&mut h);
                        h.finish()
                    });
                    (p, h)
                })
                .collect(),
        )
    }

    /// The first file whose contents differ from `before`. A file `before` did not watch is
    /// not a change (a reload that named new files must not trigger another).
    pub(crate) fn changed_since(&self, before: &Fingerprints) -> Option<&Path> {
        self.0
            .iter()
            .find(|(p, h)| before.0.get(*p).is_some_and(|b| b != *h))
            .map(|(p, _)| p.as_path())
    }
}

/// The config file (unless embedded), the certificate and key, the JWT public keys and the
/// auth center's signing key.
pub fn watched_files(config: &Config) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if config.source != Path::new(config::EMBEDDED_SOURCE) {
        files.push(config.source.clone());
    }
    files.push(config.tls.cert.clone());
    files.push(config.tls.key.clone());
    for k in &config.jwt.keys {
        if let KeyMaterial::PublicKeyFile(p) = &k.material {
            files.push(p.clone());
        }
    }
    if let Some(SigningKey::PrivateKeyFile(p)) = config.auth.as_ref().map(|a| &a.signing_key) {
        files.push(p.clone());
    }
    files.sort();
    files.dedup();
    files
}
