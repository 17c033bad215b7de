//! The binary's commands as a user runs them: `check` (every error with file:line:col, exit
//! 1), `keygen`, and `token`.

use std::path::Path;
use std::process::Command;

fn gateway(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
[listen]
https = "127.0.0.1:0"

[tls]
cert = "certs/gateway.crt"
key = "certs/gateway.key"

[jwt]
algorithms = ["EdDSA"]
issuer = "gateway"
audience = "api"
keys = [{ kid = "k1", public_key = "certs/signing.pub.pem" }]

[session]
store = "memory"

[auth]
signing_key = "certs/signing.pem"
signing_kid = "k1"

[[route]]
path = "/api/"
upstream = "http://127.0.0.1:9000"
"#;

#[test]
fn keygen_then_check_then_token() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = gateway(dir.path(), &["keygen", "--dir", "certs"]);
    assert_eq!(code, 0, "{err}");
    for f in [
        "gateway.crt",
        "gateway.key",
        "signing.pem",
        "signing.pub.pem",
    ] {
        assert!(dir.path().join("certs").join(f).exists(), "{f} missing");
    }
    // A second keygen refuses to overwrite.
    let (code, _, err) = gateway(dir.path(), &["keygen", "--dir", "certs"]);
    assert_ne!(code, 0, "{err}");

    std::fs::write(dir.path().join("gateway.toml"), GOOD).unwrap();
    let (code, out, err) = gateway(dir.path(), &["check", "--config", "gateway.toml"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, token, err) = gateway(
        dir.path(),
        &[
            "token",
            "--config",
            "gateway.toml",
            "--sub",
            "alice",
            "--role",
            "admin",
            "--ttl",
            "5m",
            "--no-session",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
}

#[test]
fn check_names_every_mistake_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let bad = GOOD
        .replace("issuer = \"gateway\"", "issuer = \"gateway\"\nbogus = 1")
        .replace(
            "upstream = \"http://127.0.0.1:9000\"",
            "upstream = \"ftp://x\"",
        )
        .replace("algorithms = [\"EdDSA\"]", "algorithms = [\"none\"]");
    std::fs::write(dir.path().join("bad.toml"), &bad).unwrap();
    let (code, _, err) = gateway(dir.path(), &["check", "--config", "bad.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.toml:"), "{err}");
    // serde stops at the first unknown key; the message names it and its place.
    let line = bad.lines().position(|l| l.starts_with("bogus")).unwrap() + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("bogus"), "{err}");

    let semantic = GOOD
        .replace(
            "upstream = \"http://127.0.0.1:9000\"",
            "upstream = \"ftp://x\"",
        )
        .replace("algorithms = [\"EdDSA\"]", "algorithms = [\"none\"]");
    std::fs::write(dir.path().join("bad2.toml"), &semantic).unwrap();
    let (code, _, err) = gateway(dir.path(), &["check", "--config", "bad2.toml"]);
    assert_eq!(code, 1, "{err}");
    let up_line = semantic
        .lines()
        .position(|l| l.starts_with("upstream"))
        .unwrap()
        + 1;
    let alg_line = semantic
        .lines()
        .position(|l| l.starts_with("algorithms"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("bad2.toml:{up_line}:")), "{err}");
    assert!(err.contains(&format!("bad2.toml:{alg_line}:")), "{err}");
    assert!(err.contains("route[0].upstream"), "{err}");
    assert!(err.contains("jwt.algorithms"), "{err}");
}

#[test]
fn check_reports_files_that_do_not_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), GOOD).unwrap();
    let (code, _, err) = gateway(dir.path(), &["check", "--config", "gateway.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("gateway.crt") || err.contains("gateway.key"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = gateway(dir.path(), &["check", "--config", "nope.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn the_shipped_config_checks() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    std::fs::write(dir.path().join("gateway.toml"), shipped).unwrap();
    // Its development keys are made on first start; check accepts their absence.
    let (code, out, err) = gateway(dir.path(), &["check"]);
    assert_eq!(code, 0, "{out}{err}");
}
