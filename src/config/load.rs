//! Reading `gateway.toml` into [`Config`]: parse with spans, then convert and validate,
//! collecting every error rather than stopping at the first.
//!
//! This file holds the entry points and the conversion helpers every table uses;
//! `load/tables.rs` converts the small tables, `load/jwt.rs` `[jwt]`, `load/auth.rs`
//! `[auth]`, `load/admin.rs` `[admin]`, `load/issuer.rs` `[[issuer]]` and `[oidc]`,
//! `load/route.rs` the `[[route]]` tables (their token keys in `load/route_tokens.rs`).

mod admin;
mod auth;
mod issuer;
mod jwt;
mod route;
mod route_tokens;
mod tables;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::document::{self, Document};
use super::duration::{self, parse_duration};
use super::error::Collector;
use super::places::Places;
use super::{Config, ConfigError, ConfigErrors};

/// The shipped `gateway.toml`, used when no config file is given and none exists.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../gateway.toml");

/// The `source` of the embedded default: its relative paths resolve against the current
/// directory.
pub const EMBEDDED_SOURCE: &str = "<embedded>";

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let unplaced = |reason: String| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            col: 0,
            key: String::new(),
            reason,
        }])
    };
    let bytes = std::fs::read(path).map_err(|e| unplaced(format!("cannot read the file: {e}")))?;
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes());
            let mut errs = Collector::new(path.to_owned(), &lossy);
            // The lossy text is identical to the input up to `valid`, so the offset holds.
            errs.at(valid, "", "the file is not UTF-8 text (TOML must be UTF-8)");
            return Err(errs
                .finish()
                .err()
                .unwrap_or_else(|| unplaced(String::new())));
        }
    };
    load_str(&src, path)
}

/// Validates `src` as if read from `source` (relative paths resolve against its directory).
/// `*_env` keys are read from the process environment.
pub fn load_str(src: &str, source: &Path) -> Result<Config, ConfigErrors> {
    load_str_with_env(src, source, &|name| std::env::var_os(name))
}

/// [`load_str`] with `*_env` values looked up in `env` instead of the process environment
/// (for checking a deployment's config against the secrets it will be given).
pub fn load_str_env(
    src: &str,
    source: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Config, ConfigErrors> {
    load_str_with_env(src, source, env)
}

/// Where `*_env` values come from: the process environment, or a map in tests.
type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

pub(super) fn load_str_with_env(
    src: &str,
    source: &Path,
    env: Env<'_>,
) -> Result<Config, ConfigErrors> {
    let base = if source == Path::new(EMBEDDED_SOURCE) {
        PathBuf::new()
    } else {
        source.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let mut cx = Cx {
        errs: Collector::new(source.to_owned(), src),
        places: Places::new(source),
        base,
        env,
    };
    let (doc, raw) = document::parse(src);
    for e in raw {
        match e.span {
            Some(span) => cx.errs.at(span.start, e.key, e.message),
            None => cx.errs.unplaced(e.key, e.message),
        }
    }
    let config = convert(&mut cx, &doc, source);
    cx.errs.finish()?;
    config.ok_or_else(|| {
        // Every `None` above comes with an error; this is a guard, not an expected path.
        ConfigErrors(vec![ConfigError {
            file: source.to_owned(),
            line: 0,
            col: 0,
            key: String::new(),
            reason: "invalid configuration".to_owned(),
        }])
    })
}

fn convert(cx: &mut Cx<'_>, doc: &Document, source: &Path) -> Option<Config> {
    let listen = doc.listen.as_ref().and_then(|l| tables::listen(cx, l));
    let runtime = tables::runtime(cx, doc.runtime.as_ref().map(Spanned::get_ref));
    let reload = tables::reload(cx, doc.reload.as_ref().map(Spanned::get_ref));
    let otlp = opt(cx, doc.otlp.as_ref(), tables::otlp);
    let tls = doc.tls.as_ref().and_then(|t| tables::tls(cx, t));
    let jwt = doc.jwt.as_ref().and_then(|j| jwt::jwt(cx, j));
    let session = tables::session(cx, doc.session.as_ref().map(Spanned::get_ref));
    let headers = tables::headers(
        cx,
        doc.headers.as_ref().map(Spanned::get_ref),
        doc.auth.as_ref().map(|a| a.get_ref().signing_key.is_some()),
    );
    let auth = match &doc.auth {
        Some(a) => auth::auth(cx, a, doc.jwt.as_ref().map(Spanned::get_ref)).map(Some),
        None => Some(None),
    };
    let limits = tables::limits(cx, doc.limits.as_ref().map(Spanned::get_ref));
    let demo = opt(cx, doc.demo.as_ref(), tables::demo);
    let admin = opt(cx, doc.admin.as_ref(), |cx, a| admin::admin(cx, a, doc));
    let issuers = issuer::issuers(cx, doc);
    let oidc = opt(cx, doc.oidc.as_ref(), |cx, o| issuer::oidc(cx, o, doc));
    let routes = route::routes(cx, doc);
    if let (Some(l), Some(d)) = (&listen, &demo) {
        tables::distinct_addresses(cx, doc, l, d);
    }
    Some(Config {
        source: source.to_owned(),
        places: std::mem::take(&mut cx.places),
        listen: listen?,
        runtime: runtime?,
        reload: reload?,
        otlp: otlp?,
        tls: tls?,
        jwt: jwt?,
        session: session?,
        headers: headers?,
        auth: auth?,
        limits: limits?,
        demo: demo?,
        admin: admin?,
        issuers: issuers?,
        oidc: oidc?,
        routes: routes?,
    })
}

/// The conversion context: the error collector, where relative paths start, the environment.
pub(super) struct Cx<'a> {
    pub errs: Collector,
    /// Where the keys naming files and URLs are, for errors found when those are loaded.
    pub places: Places,
    base: PathBuf,
    env: Env<'a>,
}

/// `"value"` as TOML would write it, for "got ..." in messages.
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl Cx<'_> {
    pub(super) fn err(&mut self, at: &Spanned<impl Sized>, key: &str, reason: impl Into<String>) {
        self.errs.at(at.span().start, key, reason);
    }

    pub(super) fn addr(&mut self, v: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let hint = if v.get_ref().contains("localhost") {
                    " (a literal IP address; \"localhost\" is not resolved here)"
                } else {
                    ""
                };
                self.err(
                    v,
                    key,
                    format!(
                        "expected an address like \"0.0.0.0:8443\" or \"[::1]:8443\"{hint}, got {}",
                        quoted(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    /// An optional duration with a default and inclusive bounds.
    pub(super) fn duration(
        &mut self,
        v: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(v) = v else { return Some(default) };
        match parse_duration(v.get_ref()) {
            Ok(d) if d < min || d > max => {
                self.err(
                    v,
                    key,
                    format!(
                        "expected a duration from {} to {}, got {}",
                        duration::display(min),
                        duration::display(max),
                        quoted(v.get_ref())
                    ),
                );
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                self.err(
                    v,
                    key,
                    format!(
                        "expected {}, got {} ({why})",
                        duration::EXPECTED,
                        quoted(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    /// An optional integer with a default and inclusive bounds.
    pub(super) fn int(
        &mut self,
        v: Option<&Spanned<i64>>,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let Some(v) = v else { return Some(default) };
        let n = *v.get_ref();
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.err(
                v,
                key,
                format!("expected an integer from {min} to {max}, got {n}"),
            );
            None
        }
    }

    /// `int` converted to `usize` (the bounds are chosen so it always fits).
    pub(super) fn usize(
        &mut self,
        v: Option<&Spanned<i64>>,
        key: &str,
        d: i64,
        lo: i64,
        hi: i64,
    ) -> Option<usize> {
        self.int(v, key, d, lo, hi)
            .and_then(|n| usize::try_from(n).ok())
    }

    /// One of a fixed set of strings.
    pub(super) fn choice<T: Copy>(
        &mut self,
        v: Option<&Spanned<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        let Some(v) = v else { return Some(default) };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v.get_ref()) {
            return Some(*t);
        }
        let names: Vec<String> = options.iter().map(|(n, _)| quoted(n)).collect();
        self.err(
            v,
            key,
            format!(
                "expected one of {}, got {}",
                names.join(", "),
                quoted(v.get_ref())
            ),
        );
        None
    }

    /// A string that must not be empty (or only spaces).
    pub(super) fn nonempty(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        what: &str,
    ) -> Option<String> {
        if v.get_ref().trim().is_empty() {
            self.err(v, key, format!("expected {what}, got an empty string"));
            None
        } else {
            Some(v.get_ref().clone())
        }
    }

    /// A file path, resolved against the config file's directory.
    pub(super) fn path(&mut self, v: &Spanned<String>, key: &str) -> Option<PathBuf> {
        let s = self.nonempty(v, key, "a file path")?;
        let p = Path::new(&s);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        self.place(v, key, Some(&path));
        Some(path)
    }

    /// Keeps where `key` is, for errors found when what it names is loaded.
    pub(super) fn place(&mut self, v: &Spanned<impl Sized>, key: &str, file: Option<&Path>) {
        let at = self.errs.position(v.span().start);
        self.places.add(key, file, at);
    }

    /// The bytes of the environment variable named by `v`, which must be set and non-empty.
    pub(super) fn secret_env(&mut self, v: &Spanned<String>, key: &str) -> Option<Vec<u8>> {
        let name = v.get_ref();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.err(
                v,
                key,
                format!(
                    "expected the name of an environment variable (letters, digits, '_'), got {}",
                    quoted(name)
                ),
            );
            return None;
        }
        match (self.env)(name) {
            Some(value) if !value.is_empty() => Some(value.into_encoded_bytes()),
            Some(_) => {
                self.err(v, key, format!("the environment variable {name} is empty"));
                None
            }
            None => {
                self.err(
                    v,
                    key,
                    format!("the environment variable {name} is not set"),
                );
                None
            }
        }
    }
}

/// Converts an optional value: absent is `Some(None)`, invalid is `None`.
pub(super) fn opt<V, T>(
    cx: &mut Cx<'_>,
    v: Option<&V>,
    f: impl FnOnce(&mut Cx<'_>, &V) -> Option<T>,
) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => f(cx, v).map(Some),
    }
}

pub(super) const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}
