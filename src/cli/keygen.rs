//! `gateway keygen`: a self-signed TLS certificate for localhost and a token-signing key pair.
//! Also the "self-signed if missing" start-up path. Development material only: the
//! certificate is its own issuer and nothing trusts it until told to.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

/// Names the certificate is valid for.
const SUBJECT_ALT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Lifetime of the development certificate.
const CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Backdating, so a client whose clock is a little behind still accepts a fresh certificate.
const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// Where `write_dev_material` put everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeygenOutput {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub signing_private: PathBuf,
    pub signing_public: PathBuf,
}

/// Why key material could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{}: already exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Writes `gateway.crt`, `gateway.key`, `signing.pem` and `signing.pub.pem` into `dir`
/// (created if missing). Nothing is written if any of them exists, unless `force`.
pub fn write_dev_material(dir: &Path, force: bool) -> Result<KeygenOutput, KeygenError> {
    let out = KeygenOutput {
        cert: dir.join("gateway.crt"),
        key: dir.join("gateway.key"),
        signing_private: dir.join("signing.pem"),
        signing_public: dir.join("signing.pub.pem"),
    };
    if !force {
        for p in [
            &out.cert,
            &out.key,
            &out.signing_private,
            &out.signing_public,
        ] {
            refuse_existing(p)?;
        }
    }
    fs::create_dir_all(dir).map_err(|source| KeygenError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (cert, key) = tls_pair()?;
    let (private, public) = signing_pair()?;
    write_file(&out.key, &key, Secret::Yes, force)?;
    write_file(&out.cert, &cert, Secret::No, force)?;
    write_file(&out.signing_private, &private, Secret::Yes, force)?;
    write_file(&out.signing_public, &public, Secret::No, force)?;
    Ok(out)
}

/// Writes a self-signed localhost certificate and its key; never replaces a file.
pub fn write_tls_pair(cert: &Path, key: &Path) -> Result<(), KeygenError> {
    refuse_existing(cert)?;
    refuse_existing(key)?;
    let (cert_pem, key_pem) = tls_pair()?;
    write_file(key, &key_pem, Secret::Yes, false)?;
    write_file(cert, &cert_pem, Secret::No, false)
}

/// Writes an Ed25519 signing key (PKCS#8 PEM) and its public key (SPKI PEM); never replaces
/// a file.
pub fn write_signing_pair(private: &Path, public: &Path) -> Result<(), KeygenError> {
    refuse_existing(private)?;
    refuse_existing(public)?;
    let (private_pem, public_pem) = signing_pair()?;
    write_file(private, &private_pem, Secret::Yes, false)?;
    write_file(public, &public_pem, Secret::No, false)
}

/// A self-signed ECDSA P-256 certificate for localhost: (certificate PEM, key PEM).
fn tls_pair() -> Result<(String, String), KeygenError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(SUBJECT_ALT_NAMES.map(str::to_owned).to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "gateway development certificate");
    let now = SystemTime::now();
    params.not_before = now.checked_sub(CERT_BACKDATE).unwrap_or(now).into();
    params.not_after = (now + CERT_LIFETIME).into();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The DER of an Ed25519 PKCS#8 v1 `PrivateKeyInfo` (RFC 8410 section 7) up to the seed:
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
/// v1 has no public key field; OpenSSL 3 and Python's cryptography read it, while the v2 form
/// (with the public key) that the crypto library generates is refused by some of them.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A fresh Ed25519 key pair: (PKCS#8 v1 private PEM, SPKI public PEM).
fn signing_pair() -> Result<(String, String), KeygenError> {
    let seed: [u8; 32] = rand::random();
    let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    // Parsing it back checks the encoding and derives the public key.
    let key = KeyPair::try_from(der.as_slice())?;
    if key.algorithm() != &rcgen::PKCS_ED25519 {
        return Err(KeygenError::Generate(rcgen::Error::CouldNotParseKeyPair));
    }
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Writes a fresh admin bearer token (32 random bytes, base64url, no newline) to `path`,
/// mode 0600; never replaces a file. Returns the token.
pub fn write_admin_token(path: &Path) -> Result<crate::config::AdminToken, KeygenError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    refuse_existing(path)?;
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    write_file(path, &token, Secret::Yes, false)?;
    // 43 base64url characters: always a valid token.
    crate::config::AdminToken::new(token.as_bytes()).map_err(|e| KeygenError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Secret {
    Yes,
    No,
}

fn refuse_existing(path: &Path) -> Result<(), KeygenError> {
    // symlink_metadata: a dangling symlink counts as existing too.
    match fs::symlink_metadata(path) {
        Ok(_) => Err(KeygenError::Exists(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KeygenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates `path` (mode 0600 for secrets on unix). Without `replace`, an existing file is an
/// error even if it appeared since the check; with it, the old file is removed first so the
/// new one gets the right mode rather than inheriting the old one's.
fn write_file(
    path: &Path,
    contents: &str,
    secret: Secret,
    replace: bool,
) -> Result<(), KeygenError> {
    let io = |source| KeygenError::Io {
        path: path.to_owned(),
        source,
    };
    if replace {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret == Secret::Yes { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    file.write_all(contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_four_files_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = write_dev_material(&dir.path().join("certs"), false).unwrap();
        for p in [
            &out.cert,
            &out.key,
            &out.signing_private,
            &out.signing_public,
        ] {
            assert!(p.is_file(), "{}", p.display());
        }
        let cert = fs::read_to_string(&out.cert).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = fs::read_to_string(&out.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(KeyPair::from_pem(&key).is_ok());
        let signing =
            KeyPair::from_pem(&fs::read_to_string(&out.signing_private).unwrap()).unwrap();
        assert_eq!(signing.algorithm(), &rcgen::PKCS_ED25519);
        assert_eq!(
            fs::read_to_string(&out.signing_public).unwrap(),
            signing.public_key_pem()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&out.key), 0o600);
            assert_eq!(mode(&out.signing_private), 0o600);
        }
    }

    #[test]
    fn the_signing_key_is_pkcs8_v1_and_loads_back() {
        let (private, public) = signing_pair().unwrap();
        use base64::Engine as _;
        let body: String = private
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(der.len(), 48, "PKCS#8 v1 Ed25519 is 48 bytes of DER");
        assert_eq!(der[..16], ED25519_PKCS8_V1_PREFIX);
        let pair = KeyPair::from_pem(&private).unwrap();
        assert_eq!(pair.public_key_pem(), public);
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn the_admin_token_file_is_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let token = write_admin_token(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 43);
        assert!(token.matches(text.as_bytes()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(
            write_admin_token(&path),
            Err(KeygenError::Exists(_))
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("signing.pem");
        fs::write(&existing, "keep me").unwrap();
        let err = write_dev_material(dir.path(), false).unwrap_err();
        assert!(
            matches!(&err, KeygenError::Exists(p) if *p == existing),
            "{err}"
        );
        assert!(err.to_string().contains("signing.pem"));
        // Nothing else was written.
        assert!(!dir.path().join("gateway.crt").exists());
        assert_eq!(fs::read_to_string(&existing).unwrap(), "keep me");

        let out = write_dev_material(dir.path(), true).unwrap();
        assert_ne!(fs::read_to_string(&out.signing_private).unwrap(), "keep me");
    }

    #[test]
    fn pair_writers_refuse_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        write_tls_pair(&c, &k).unwrap();
        assert!(matches!(
            write_tls_pair(&c, &k),
            Err(KeygenError::Exists(_))
        ));
        let (s, p) = (dir.path().join("s.pem"), dir.path().join("p.pem"));
        write_signing_pair(&s, &p).unwrap();
        assert!(matches!(
            write_signing_pair(&s, &p),
            Err(KeygenError::Exists(_))
        ));
    }
}
