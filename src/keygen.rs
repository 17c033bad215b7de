//! keygen (stub).
use std::path::Path;
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("x")]
    X,
}
pub fn write_tls_pair(cert: &Path, key: &Path) -> Result<(), KeygenError> {
    let _ = (cert, key);
    Ok(())
}
pub fn write_signing_pair(private: &Path, public: &Path) -> Result<(), KeygenError> {
    let _ = (private, public);
    Ok(())
}
pub struct KeygenOutput;
impl std::fmt::Display for KeygenOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x")
    }
}
pub fn write_dev_material(dir: &Path, force: bool) -> Result<KeygenOutput, KeygenError> {
    let _ = (dir, force);
    Ok(KeygenOutput)
}
