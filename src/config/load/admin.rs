//! Converts `[admin]`: the token comes from `token_env`, else from `token_file`; a token that
//! is missing, short or unreadable is an error at the key that named it. A missing file is
//! left for the start-up to write only under `tls.self_signed_if_missing` (development).

use toml::Spanned;

use super::{quoted, Cx};
use crate::config::document::Document;
use crate::config::file::AdminFile;
use crate::config::{Admin, AdminToken};

pub(super) fn admin(cx: &mut Cx<'_>, a: &Spanned<AdminFile>, doc: &Document) -> Option<Admin> {
    let a = a.get_ref();
    let dev_material = doc
        .tls
        .as_ref()
        .and_then(|t| t.get_ref().self_signed_if_missing.as_ref())
        .is_some_and(|b| *b.get_ref());
    let token_file = match &a.token_file {
        None => None,
        Some(v) => Some(cx.path(v, "admin.token_file")?),
    };
    let name = a.token_env.get_ref();
    if !valid_env_name(name) {
        cx.err(
            &a.token_env,
            "admin.token_env",
            format!(
                "expected the name of an environment variable (letters, digits, '_'), got {}",
                quoted(name)
            ),
        );
        return None;
    }
    let token = match ((cx.env)(name), &token_file, &a.token_file) {
        (Some(value), _, _) => match AdminToken::new(value.as_encoded_bytes()) {
            Ok(t) => Some(t),
            Err(why) => {
                cx.err(&a.token_env, "admin.token_env", format!("${name}: {why}"));
                return None;
            }
        },
        (None, Some(path), Some(at)) => match std::fs::read(path) {
            Ok(bytes) => match AdminToken::new(bytes.trim_ascii_end()) {
                Ok(t) => Some(t),
                Err(why) => {
                    cx.err(at, "admin.token_file", format!("{}: {why}", path.display()));
                    return None;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dev_material => None,
            Err(e) => {
                cx.err(
                    at,
                    "admin.token_file",
                    format!(
                        "cannot read {} ({e}); it is read because ${name} is not set",
                        path.display()
                    ),
                );
                return None;
            }
        },
        _ => {
            cx.err(
                &a.token_env,
                "admin.token_env",
                format!(
                    "the environment variable {name} is not set (and there is no admin.token_file)"
                ),
            );
            return None;
        }
    };
    Some(Admin {
        token_env: name.clone(),
        token_file,
        token,
    })
}

fn valid_env_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use crate::config::load::load_str_with_env;
    use crate::config::{Config, ConfigErrors};

    const TOKEN: &str = "an-admin-token-of-forty-bytes-0123456789";

    fn src(admin: &str, dev: bool) -> String {
        format!(
            r#"[listen]
https = "127.0.0.1:8443"
admin = "127.0.0.1:9901"

[tls]
cert = "c.pem"
key = "k.pem"
self_signed_if_missing = {dev}

[jwt]
algorithms = ["EdDSA"]
issuer = "gw"
audience = "api"
keys = [{{ kid = "k1", public_key = "pub.pem" }}]

[admin]
{admin}

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
"#
        )
    }

    fn load(src: &str, dir: &Path, env: Option<&str>) -> Result<Config, ConfigErrors> {
        let lookup = |name: &str| {
            (name == "GW_ADMIN")
                .then(|| env.map(OsString::from))
                .flatten()
        };
        load_str_with_env(src, &dir.join("gateway.toml"), &lookup)
    }

    /// `line:col key: reason` of the only error.
    #[track_caller]
    fn only_error(r: Result<Config, ConfigErrors>) -> String {
        let errs = r.expect_err("expected an error").0;
        assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
        let e = &errs[0];
        format!("{}:{} {}: {}", e.line, e.col, e.key, e.reason)
    }

    #[test]
    fn the_token_comes_from_the_environment_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "y".repeat(40)).unwrap();
        let s = src(
            "token_env = \"GW_ADMIN\"\ntoken_file = \"admin.token\"",
            false,
        );
        let c = load(&s, dir.path(), Some(TOKEN)).unwrap();
        let admin = c.admin.unwrap();
        assert!(admin.token.unwrap().matches(TOKEN.as_bytes()));
        assert_eq!(admin.token_file, Some(dir.path().join("admin.token")));
        // Unset: the file, without its trailing newline.
        std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
        let c = load(&s, dir.path(), None).unwrap();
        assert!(c.admin.unwrap().token.unwrap().matches(TOKEN.as_bytes()));
    }

    #[test]
    fn a_short_or_missing_token_is_an_error_at_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = src("token_env = \"GW_ADMIN\"", false);
        let e = only_error(load(&s, dir.path(), Some("short")));
        assert!(
            e.starts_with(
                "17:13 admin.token_env: $GW_ADMIN: the admin token has 5 bytes; at least 32"
            ),
            "{e}"
        );
        let e = only_error(load(&s, dir.path(), None));
        assert!(
            e.starts_with("17:13 admin.token_env:") && e.contains("not set"),
            "{e}"
        );

        let s = src(
            "token_env = \"GW_ADMIN\"\ntoken_file = \"admin.token\"",
            false,
        );
        let e = only_error(load(&s, dir.path(), None));
        assert!(e.starts_with("18:14 admin.token_file: cannot read"), "{e}");
        std::fs::write(dir.path().join("admin.token"), "0123456789\n").unwrap();
        let e = only_error(load(&s, dir.path(), None));
        assert!(
            e.starts_with("18:14 admin.token_file:") && e.contains("10 bytes"),
            "{e}"
        );

        let e = only_error(load(&src("token_env = \"A-B\"", false), dir.path(), None));
        assert!(
            e.starts_with("17:13 admin.token_env: expected the name"),
            "{e}"
        );
        // A misspelt key: the unknown key and the required one it should have been.
        let e = match load(&src("token = \"x\"", false), dir.path(), None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected errors"),
        };
        assert!(e.contains("admin.token: unknown field `token`"), "{e}");
        assert!(e.contains("admin: missing field `token_env`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_left_to_the_start_only_in_development() {
        let dir = tempfile::tempdir().unwrap();
        let s = src(
            "token_env = \"GW_ADMIN\"\ntoken_file = \"admin.token\"",
            true,
        );
        let c = load(&s, dir.path(), None).unwrap();
        let admin = c.admin.unwrap();
        assert!(admin.token.is_none());
        assert_eq!(admin.token_file, Some(dir.path().join("admin.token")));
    }

    #[test]
    fn without_the_table_there_is_no_admin_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = src("", false).replace("[admin]\n", "");
        assert!(load(&s, dir.path(), None).unwrap().admin.is_none());
    }
}
