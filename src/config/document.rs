//! The file parsed into its tables ([`Document`]): parsed once into a spanned tree, then each
//! top-level table and each `[[route]]` deserialized on its own, and within a table every
//! mistake reported (an unknown key is taken out and the table tried again), so one mistake
//! does not hide the others. Errors carry the byte span and the dotted key under it.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::file::*;

type S<T> = Spanned<T>;

/// The file, table by table. A table is `None` when it is absent or did not deserialize (then
/// an error says why).
#[derive(Debug, Default)]
pub(super) struct Document {
    pub listen: Option<S<ListenFile>>,
    pub runtime: Option<S<RuntimeFile>>,
    pub reload: Option<S<ReloadFile>>,
    pub otlp: Option<S<OtlpFile>>,
    pub tls: Option<S<TlsFile>>,
    pub jwt: Option<S<JwtFile>>,
    pub session: Option<S<SessionFile>>,
    pub headers: Option<S<HeadersFile>>,
    pub auth: Option<S<AuthFile>>,
    pub limits: Option<S<LimitsFile>>,
    pub demo: Option<S<DemoFile>>,
    pub admin: Option<S<AdminFile>>,
    /// `(index in the file, route)` for every `[[route]]` that deserialized.
    pub routes: Vec<(usize, S<RouteFile>)>,
    /// How many `[[route]]` tables the file has, good or bad.
    pub route_count: usize,
    /// `(index in the file, issuer)` for every `[[issuer]]` that deserialized.
    pub issuers: Vec<(usize, S<IssuerFile>)>,
    /// How many `[[issuer]]` tables the file has, good or bad.
    pub issuer_count: usize,
    pub oidc: Option<S<OidcFile>>,
}

/// A syntax or shape error: where (byte span), which key, and serde's or our message.
#[derive(Debug)]
pub(super) struct RawError {
    pub span: Option<Range<usize>>,
    pub key: String,
    pub message: String,
}

const TABLES: &[&str] = &[
    "listen", "runtime", "reload", "otlp", "tls", "jwt", "session", "headers", "auth", "limits",
    "demo", "route", "admin", "issuer", "oidc",
];
const REQUIRED: &[&str] = &["listen", "tls", "jwt", "route"];

/// Parses `src` into its tables. On a TOML syntax error only the syntax errors are returned
/// (the recovered tree is not trusted for anything else).
pub(super) fn parse(src: &str) -> (Document, Vec<RawError>) {
    let mut doc = Document::default();
    let (root, syntax) = DeTable::parse_recoverable(src);
    if !syntax.is_empty() {
        let errors = syntax
            .into_iter()
            .map(|e| RawError {
                key: e
                    .span()
                    .map(|s| key_at(String::new(), &root, s.start))
                    .unwrap_or_default(),
                span: e.span(),
                message: format!("TOML syntax: {}", e.message().trim_end()),
            })
            .collect();
        return (doc, errors);
    }
    let mut errors = Vec::new();
    let root = root.into_inner();
    for name in REQUIRED {
        if !root.keys().any(|k| k.get_ref().as_ref() == *name) {
            let reason = if *name == "route" {
                "missing: at least one [[route]] table is required".to_owned()
            } else {
                format!("missing required table [{name}]")
            };
            errors.push(RawError {
                span: None,
                key: (*name).to_owned(),
                message: reason,
            });
        }
    }
    for (key, value) in root {
        let name: &str = key.get_ref();
        let e = &mut errors;
        match name {
            "listen" => doc.listen = table(name, value, e),
            "runtime" => doc.runtime = table(name, value, e),
            "reload" => doc.reload = table(name, value, e),
            "otlp" => doc.otlp = table(name, value, e),
            "tls" => doc.tls = table(name, value, e),
            "jwt" => doc.jwt = table(name, value, e),
            "session" => doc.session = table(name, value, e),
            "headers" => doc.headers = table(name, value, e),
            "auth" => doc.auth = table(name, value, e),
            "limits" => doc.limits = table(name, value, e),
            "demo" => doc.demo = table(name, value, e),
            "admin" => doc.admin = table(name, value, e),
            "route" => {
                (doc.route_count, doc.routes) = array_of_tables(name, value, e);
            }
            "issuer" => {
                (doc.issuer_count, doc.issuers) = array_of_tables(name, value, e);
            }
            "oidc" => doc.oidc = table(name, value, e),
            _ => {
                let what = if matches!(value.get_ref(), DeValue::Table(_)) {
                    "table"
                } else {
                    "key"
                };
                errors.push(RawError {
                    span: Some(key.span()),
                    key: name.to_owned(),
                    message: format!(
                        "unknown top-level {what} `{name}`, expected one of {}",
                        TABLES
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    (doc, errors)
}

/// `[[name]]` tables: how many the file has, and `(index, table)` for each that deserialized.
fn array_of_tables<T: DeserializeOwned>(
    name: &str,
    value: S<DeValue<'_>>,
    errors: &mut Vec<RawError>,
) -> (usize, Vec<(usize, S<T>)>) {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        errors.push(RawError {
            span: Some(span),
            key: name.to_owned(),
            message: format!("expected [[{name}]] tables (note the double brackets)"),
        });
        return (0, Vec::new());
    };
    let count = items.len();
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(t) = table(&format!("{name}[{i}]"), item, errors) {
            out.push((i, t));
        }
    }
    (count, out)
}

/// Deserializes one table; on failure records the error with the key found under its span.
fn table<T: DeserializeOwned>(
    key: &str,
    value: S<DeValue<'_>>,
    errors: &mut Vec<RawError>,
) -> Option<S<T>> {
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        errors.push(RawError {
            span: Some(value.span()),
            key: key.to_owned(),
            message: format!("expected a table, got {}", kind(value.get_ref())),
        });
        return None;
    }
    // serde stops at a table's first mistake. So that one mistake does not hide the next
    // (an unknown key hiding a bad value beside it), record it, take the entry it points at
    // out of the table and try again: each round removes one entry, so this ends. A table
    // whose only mistakes were unknown keys is then converted and checked like any other
    // (its values' mistakes are reported too); one with a value of the wrong type is not, as
    // the value taken out would show up as a second, false mistake (a missing key).
    let mut value = value;
    let mut removed: Vec<String> = Vec::new();
    let mut only_unknown_keys = true;
    loop {
        match S::<T>::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return only_unknown_keys.then_some(v),
            Err(e) => {
                let message = e.message().trim_end();
                if removed
                    .iter()
                    .any(|k| message == format!("missing field `{k}`"))
                {
                    return None;
                }
                // Each round deserializes the table again: bounded, so a file with thousands
                // of unknown keys costs a bounded number of rounds, not their square.
                if removed.len() >= MAX_ERRORS_PER_TABLE {
                    errors.push(RawError {
                        span: Some(value.span()),
                        key: key.to_owned(),
                        message: format!(
                            "more than {MAX_ERRORS_PER_TABLE} mistakes in this table; the rest are not listed"
                        ),
                    });
                    return None;
                }
                let span = e.span();
                let path = match &span {
                    Some(s) => key_at(key.to_owned(), &value, s.start),
                    None => key.to_owned(),
                };
                only_unknown_keys &= message.starts_with("unknown field `");
                errors.push(RawError {
                    span: span.clone().or(Some(value.span())),
                    key: path,
                    message: with_quote_hint(message),
                });
                match span.and_then(|s| remove_at(&mut value, s.start)) {
                    Some(k) => removed.push(k),
                    None => return None,
                }
            }
        }
    }
}

/// How many mistakes of one table are listed before the rest are summed up in one line.
const MAX_ERRORS_PER_TABLE: usize = 50;

/// Takes out of `value` the deepest table entry whose key or value holds byte `pos`, and
/// returns its key. Array items cannot be taken out alone: the entry holding the array goes.
fn remove_at(value: &mut S<DeValue<'_>>, pos: usize) -> Option<String> {
    let holds = |r: Range<usize>| r.start <= pos && (pos < r.end || r.start == r.end);
    match value.get_mut() {
        DeValue::Table(t) => {
            let hit = t
                .iter()
                .find(|(k, v)| holds(k.span()) || holds(v.span()))
                .map(|(k, _)| k.span());
            let hit = hit?;
            let deeper = t
                .iter_mut()
                .find(|(k, _)| k.span() == hit)
                .and_then(|(_, v)| remove_at(v, pos));
            if deeper.is_some() {
                return deeper;
            }
            let name = t.keys().find(|k| k.span() == hit)?.get_ref().to_string();
            t.remove(name.as_str());
            Some(name)
        }
        DeValue::Array(a) => a
            .iter_mut()
            .filter(|v| holds(v.span()) && v.get_ref().is_table())
            .find_map(|v| remove_at(v, pos)),
        _ => None,
    }
}

/// serde says "invalid type: floating point `1.2`, expected a string"; add how to fix it.
fn with_quote_hint(message: &str) -> String {
    let bare = message
        .strip_suffix(", expected a string")
        .and_then(|m| m.split_once('`'))
        .and_then(|(_, rest)| rest.strip_suffix('`'));
    match bare {
        Some(v) if !v.contains('`') => format!("{message} (write it in quotes: \"{v}\")"),
        _ => message.to_owned(),
    }
}

/// The dotted key of the deepest key or value whose span holds byte `pos`.
fn key_at(prefix: String, value: &S<impl AsDeValue>, pos: usize) -> String {
    let holds = |r: Range<usize>| r.start <= pos && (pos < r.end || r.start == r.end);
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value.get_ref().as_de_value() {
        DeValueRef::Table(t) => {
            for (k, v) in t.iter() {
                if holds(k.span()) {
                    return join(k.get_ref());
                }
                if holds(v.span()) {
                    return key_at(join(k.get_ref()), v, pos);
                }
            }
            prefix
        }
        DeValueRef::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if holds(v.span()) {
                    return key_at(format!("{prefix}[{i}]"), v, pos);
                }
            }
            prefix
        }
        DeValueRef::Other => prefix,
    }
}

/// The root of the document is a `DeTable`, every value below it a `DeValue`: `key_at`
/// walks both.
enum DeValueRef<'a, 'i> {
    Table(&'a DeTable<'i>),
    Array(&'a [S<DeValue<'i>>]),
    Other,
}

trait AsDeValue {
    fn as_de_value(&self) -> DeValueRef<'_, '_>;
}

impl AsDeValue for DeValue<'_> {
    fn as_de_value(&self) -> DeValueRef<'_, '_> {
        match self {
            DeValue::Table(t) => DeValueRef::Table(t),
            DeValue::Array(a) => DeValueRef::Array(a),
            _ => DeValueRef::Other,
        }
    }
}

impl AsDeValue for DeTable<'_> {
    fn as_de_value(&self) -> DeValueRef<'_, '_> {
        DeValueRef::Table(self)
    }
}

/// "a string", "an integer"... for messages.
pub(super) fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
