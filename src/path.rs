//! Request path normalisation (stub).
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("ambiguous path")]
    Ambiguous,
}
pub fn normalise(raw: &str) -> Result<String, PathError> {
    Ok(raw.to_string())
}
