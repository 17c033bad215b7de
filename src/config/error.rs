//! Config errors that name the file, `line:col`, the key and the reason.

use std::fmt;
use std::path::PathBuf;

/// One mistake in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no position (e.g. a file that cannot be read).
    pub line: usize,
    pub col: usize,
    /// Dotted key path, e.g. `route[2].upstream`; empty when none applies.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every mistake found, in file order. Never empty.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while the config is converted, turning byte spans into `line:col`.
pub(super) struct Collector {
    file: PathBuf,
    src_len: usize,
    /// Byte offset where each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    src: String,
    errors: Vec<ConfigError>,
}

impl Collector {
    pub(super) fn new(file: PathBuf, src: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Collector {
            file,
            src_len: src.len(),
            line_starts,
            src: src.to_owned(),
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of the byte `offset`.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src_len);
        let line = self.line_starts.partition_point(|&start| start <= offset);
        // `line >= 1` because line_starts[0] == 0 <= offset.
        let start = self.line_starts[line - 1];
        let col = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, col + 1)
    }

    /// Records an error at byte `offset` (the start of the offending value).
    pub(super) fn at(&mut self, offset: usize, key: impl Into<String>, reason: impl Into<String>) {
        let (line, col) = self.position(offset);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            col,
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// Records an error that has no place in the file (e.g. a missing table).
    pub(super) fn unplaced(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: 0,
            col: 0,
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// The errors in file order (those without a position last), or `Ok` when there are none.
    pub(super) fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|e| (e.line == 0, e.line, e.col));
        self.errors.dedup();
        Err(ConfigErrors(self.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_position() {
        let e = ConfigError {
            file: "gateway.toml".into(),
            line: 12,
            col: 11,
            key: "route[0].upstream".into(),
            reason: "expected \"http://host:port\", got \"ftp://x\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "gateway.toml:12:11: route[0].upstream: expected \"http://host:port\", got \"ftp://x\""
        );
        let e = ConfigError {
            line: 0,
            col: 0,
            key: String::new(),
            reason: "cannot read".into(),
            ..e
        };
        assert_eq!(e.to_string(), "gateway.toml: cannot read");
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let c = Collector::new("f".into(), "ab\n\"é\" = 1\n\nx");
        assert_eq!(c.position(0), (1, 1));
        assert_eq!(c.position(1), (1, 2));
        assert_eq!(c.position(2), (1, 3)); // the newline itself
        assert_eq!(c.position(3), (2, 1));
        assert_eq!(c.position(7), (2, 4)); // after the two-byte 'é' and the quote
        assert_eq!(c.position(13), (4, 1));
        assert_eq!(c.position(999), (4, 2)); // clamped to the end
    }

    #[test]
    fn finish_sorts_in_file_order() {
        let mut c = Collector::new("f".into(), "a\nb\nc\n");
        c.unplaced("route", "missing");
        c.at(4, "c", "third");
        c.at(0, "a", "first");
        let errs = c.finish().unwrap_err().0;
        let keys: Vec<_> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "route"]);
    }
}
