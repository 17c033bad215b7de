//! Where the keys that name files and URLs sit in the config file. Those are read after the
//! config is validated (at start, on a reload, by `gateway check`); with their places kept,
//! a file that cannot be read is reported at the key that names it, `file:line:col: key:
//! reason`, like every other config mistake.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// One key that names something loaded later.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    key: String,
    /// The file it names (resolved), when it names one.
    file: Option<PathBuf>,
    line: usize,
    col: usize,
}

/// The places of a config's file-naming keys, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    source: PathBuf,
    places: Vec<Place>,
}

impl Places {
    pub(super) fn new(source: &Path) -> Self {
        Places {
            source: source.to_owned(),
            places: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, key: &str, file: Option<&Path>, (line, col): (usize, usize)) {
        self.places.push(Place {
            key: key.to_owned(),
            file: file.map(Path::to_path_buf),
            line,
            col,
        });
    }

    /// `reason` at `key`; without a position when the file does not have that key (a
    /// default).
    pub fn at_key(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let place = self.places.iter().find(|p| p.key == key);
        self.error(place, key, reason.into())
    }

    /// `reason` at the first key that names `file`; at no key when none does.
    pub fn at_file(&self, file: &Path, reason: impl Into<String>) -> ConfigError {
        let place = self.places.iter().find(|p| p.file.as_deref() == Some(file));
        self.error(place, "", reason.into())
    }

    fn error(&self, place: Option<&Place>, key: &str, reason: String) -> ConfigError {
        let (line, col) = place.map_or((0, 0), |p| (p.line, p.col));
        ConfigError {
            file: self.source.clone(),
            line,
            col,
            key: place.map_or(key, |p| p.key.as_str()).to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_key_naming_the_file() {
        let mut p = Places::new(Path::new("/etc/gw/gateway.toml"));
        p.add("tls.cert", Some(Path::new("/etc/gw/c.pem")), (5, 8));
        p.add("jwt.jwks_url", None, (9, 12));
        assert_eq!(
            p.at_file(Path::new("/etc/gw/c.pem"), "cannot read")
                .to_string(),
            "/etc/gw/gateway.toml:5:8: tls.cert: cannot read"
        );
        assert_eq!(
            p.at_key("jwt.jwks_url", "unreachable").to_string(),
            "/etc/gw/gateway.toml:9:12: jwt.jwks_url: unreachable"
        );
        assert_eq!(
            p.at_file(Path::new("/elsewhere"), "x").to_string(),
            "/etc/gw/gateway.toml: x"
        );
        assert_eq!(
            p.at_key("auth.signing_key", "x").to_string(),
            "/etc/gw/gateway.toml: auth.signing_key: x"
        );
    }
}
