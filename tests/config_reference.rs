//! README.md's "Configuration reference" stays in step with what `gateway.toml` accepts:
//! every key the config's serde shapes accept appears in the first column of its table's
//! section (`### [table]`), and every key listed there is accepted. The accepted keys are asked
//! of the loader itself: an unknown key in each table makes serde list the fields it expects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every table of gateway.toml; `jwt.keys` is the inline key table inside `[jwt]`.
const TABLES: &[&str] = &[
    "listen", "runtime", "reload", "otlp", "tls", "jwt", "session", "headers", "auth", "limits",
    "demo", "route", "admin", "issuer", "oidc",
];
const PROBE: &str = "zzz_unknown_probe";

/// The keys the loader accepts, per table, from its "expected one of" messages. serde stops
/// at a table's first error, so the `jwt.keys` probe goes in a second document.
fn accepted() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = probe(&document("", &format!("{PROBE} = 1")));
    out.extend(probe(&document(&format!(", {PROBE} = 1"), "")));
    for t in TABLES.iter().copied().chain(["jwt.keys"]) {
        assert!(
            out.contains_key(t),
            "the probe in [{t}] was not refused: {out:?}"
        );
    }
    out
}

/// A config with `jwt_line` in `[jwt]`, `keys_extra` inside the inline key table, and the
/// probe key in every other table.
fn document(keys_extra: &str, jwt_line: &str) -> String {
    format!(
        r#"
[listen]
https = "127.0.0.1:0"
{PROBE} = 1
[runtime]
{PROBE} = 1
[reload]
{PROBE} = 1
[otlp]
endpoint = "http://127.0.0.1:4318/v1/traces"
{PROBE} = 1
[tls]
cert = "c.pem"
key = "k.pem"
{PROBE} = 1
[jwt]
algorithms = ["EdDSA"]
issuer = "i"
audience = "a"
keys = [{{ kid = "k1", public_key = "p.pem"{keys_extra} }}]
{jwt_line}
[session]
{PROBE} = 1
[headers]
{PROBE} = 1
[auth]
{PROBE} = 1
[limits]
{PROBE} = 1
[demo]
echo = "127.0.0.1:1"
{PROBE} = 1
[[route]]
path = "/"
upstream = "http://127.0.0.1:1"
{PROBE} = 1
[admin]
token_env = "GW_UNSET_ADMIN_TOKEN"
{PROBE} = 1
[[issuer]]
name = "corp"
issuer = "https://idp.example.com"
audience = "a"
session = "none"
{PROBE} = 1
[oidc]
name = "sso"
issuer = "https://idp.example.com"
client_id = "c"
{PROBE} = 1
"#
    )
}

fn probe(src: &str) -> BTreeMap<String, BTreeSet<String>> {
    let errors = match gateway::config::load_str(src, Path::new("/tmp/gateway.toml")) {
        Ok(_) => panic!("unknown keys were accepted"),
        Err(e) => e.0,
    };
    let mut out = BTreeMap::new();
    for e in errors {
        let Some(table) = e.key.strip_suffix(&format!(".{PROBE}")) else {
            continue;
        };
        let table = table
            .replace("route[0]", "route")
            .replace("issuer[0]", "issuer")
            .replace("keys[0]", "keys");
        let Some((_, expected)) = e.reason.split_once("expected") else {
            panic!("{}: no list of expected fields: {}", e.key, e.reason);
        };
        let keys: BTreeSet<String> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        assert!(!keys.is_empty(), "{}: {}", e.key, e.reason);
        out.insert(table, keys);
    }
    out
}

/// One row of a README table: the keys of its first column and the whole row's text.
struct Row {
    keys: Vec<String>,
    text: String,
}

/// README's "Configuration reference": `### [table]` heading -> its table's rows.
fn readme_tables() -> BTreeMap<String, Vec<Row>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Configuration reference")
        .expect("a '## Configuration reference' section");
    let section = &readme[start + 1..];
    let end = section[3..]
        .find("\n## ")
        .map(|i| i + 3)
        .unwrap_or(section.len());
    let section = &section[..end];
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            // "### `[limits]` (all optional)", "### `[[route]]` (at least one)"
            let name = h
                .split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("heading without a `[table]`: {line}"))
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(table), Some(row)) = (&current, line.strip_prefix('|')) else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("").trim();
        if first == "key" || first.starts_with("---") {
            continue;
        }
        let keys: Vec<String> = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        assert!(!keys.is_empty(), "[{table}]: a row without a `key`: {line}");
        if let Some(rows) = out.get_mut(table) {
            rows.push(Row {
                keys,
                text: line.to_owned(),
            });
        }
    }
    out
}

#[test]
fn readme_tables_are_exactly_the_config_tables() {
    let readme: BTreeSet<String> = readme_tables().into_keys().collect();
    let tables: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        readme, tables,
        "README '### `[table]`' headings vs gateway.toml tables"
    );
}

#[test]
fn every_accepted_key_is_documented_and_every_documented_key_is_accepted() {
    let accepted = accepted();
    let readme = readme_tables();
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for table in TABLES {
        let rows = &readme[*table];
        let documented: BTreeSet<String> = rows.iter().flat_map(|r| r.keys.clone()).collect();
        let takes = &accepted[*table];
        for k in takes.difference(&documented) {
            missing.push(format!("[{table}] {k}"));
        }
        for k in documented.difference(takes) {
            unknown.push(format!("[{table}] {k}"));
        }
    }
    // The inline key tables of `jwt.keys` are documented in the `keys` row.
    let keys_row = readme["jwt"]
        .iter()
        .find(|r| r.keys.iter().any(|k| k == "keys"))
        .map(|r| r.text.as_str())
        .unwrap_or("");
    for k in &accepted["jwt.keys"] {
        let word = |w: &str| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_')) == k;
        if !keys_row.split_whitespace().any(word) {
            missing.push(format!("[jwt] keys[].{k}"));
        }
    }
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's configuration reference is out of step with the config.\n\
         accepted but not documented: {missing:?}\n\
         documented but not accepted: {unknown:?}"
    );
}
