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
    // The unknown key does not hide the bad value in its table, nor the route's.
    let at = |key: &str| bad.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    for (line, key) in [
        (at("algorithms"), "jwt.algorithms[0]"),
        (at("bogus"), "jwt.bogus"),
        (at("upstream"), "route[0].upstream"),
    ] {
        assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
        assert!(err.contains(key), "{key}: {err}");
    }
    assert!(err.contains("3 error(s)"), "{err}");

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
    // Each file that cannot be read, at the key that names it.
    let at = |prefix: &str| GOOD.lines().position(|l| l.starts_with(prefix)).unwrap() + 1;
    for (line, col, key, file) in [
        (at("cert ="), 8, "tls.cert", "certs/gateway.crt"),
        (
            at("keys ="),
            36,
            "jwt.keys[0].public_key",
            "certs/signing.pub.pem",
        ),
        (
            at("signing_key ="),
            15,
            "auth.signing_key",
            "certs/signing.pem",
        ),
    ] {
        let want = format!("gateway.toml:{line}:{col}: {key}: {file}: cannot read");
        assert!(err.contains(&want), "{want}\n{err}");
    }
    assert!(err.contains("3 error(s)"), "{err}");
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

#[test]
fn an_unknown_flag_or_a_missing_argument_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--bogus"][..],
        &["serve", "--no-such-flag"],
        &["token"],
        &["token", "--sub"],
        &["check", "--config"],
        &["keygen", "--dir"],
        &["no-such-command"],
    ] {
        let (code, _, err) = gateway(dir.path(), args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: clap's message: {err}");
    }
    // Asking for help or the version is not a mistake.
    for args in [&["--help"][..], &["--version"], &["token", "--help"]] {
        let (code, out, err) = gateway(dir.path(), args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!out.is_empty(), "{args:?}");
    }
}

/// Runs `openssl` with `args` in `dir`: (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl binary (scripts/test.sh installs it when missing)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn keygen_keys_are_read_by_openssl_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = gateway(dir.path(), &["keygen", "--dir", "certs"]);
    assert_eq!(code, 0, "{err}");
    let certs = dir.path().join("certs");

    let (ok, text) = openssl(&certs, &["pkey", "-in", "signing.pem", "-noout", "-text"]);
    assert!(ok && text.contains("ED25519 Private-Key"), "{text}");
    // PKCS#8 v1: the 48-byte PrivateKeyInfo, version 0, no public key field.
    let (ok, text) = openssl(&certs, &["asn1parse", "-in", "signing.pem"]);
    assert!(ok, "{text}");
    assert!(text.contains("l=  46 cons: SEQUENCE"), "{text}");
    assert!(text.contains("INTEGER           :00"), "{text}");
    let (ok, text) = openssl(&certs, &["pkey", "-in", "gateway.key", "-noout", "-text"]);
    assert!(ok && text.contains("Private-Key: (256 bit)"), "{text}");
    let (ok, text) = openssl(&certs, &["asn1parse", "-in", "gateway.key"]);
    assert!(
        ok && text.contains("INTEGER           :00"),
        "v1 TLS key: {text}"
    );
    let (ok, text) = openssl(
        &certs,
        &[
            "pkey",
            "-pubin",
            "-in",
            "signing.pub.pem",
            "-noout",
            "-text",
        ],
    );
    assert!(ok && text.contains("ED25519 Public-Key"), "{text}");
    // The public key openssl derives from the private one is the one keygen wrote.
    let (ok, derived) = openssl(&certs, &["pkey", "-in", "signing.pem", "-pubout"]);
    assert!(ok, "{derived}");
    let written = std::fs::read_to_string(certs.join("signing.pub.pem")).unwrap();
    assert_eq!(derived.trim(), written.trim());
    let (ok, text) = openssl(
        &certs,
        &["x509", "-in", "gateway.crt", "-noout", "-checkend", "3600"],
    );
    assert!(ok, "{text}");

    // Python's cryptography, when it is there.
    let has_python = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_python {
        let script = r#"
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ed25519, ec
k = s.load_pem_private_key(open("signing.pem", "rb").read(), None)
assert isinstance(k, ed25519.Ed25519PrivateKey), type(k)
p = s.load_pem_public_key(open("signing.pub.pem", "rb").read())
p.verify(k.sign(b"x"), b"x")
t = s.load_pem_private_key(open("gateway.key", "rb").read(), None)
assert isinstance(t, ec.EllipticCurvePrivateKey), type(t)
print("ok")
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .current_dir(&certs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python cryptography: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("skipped the Python half: python3 with `cryptography` is not importable here");
    }

    // The gateway loads what keygen wrote, and still loads a PKCS#8 v2 key of older versions.
    std::fs::write(dir.path().join("gateway.toml"), GOOD).unwrap();
    let (code, out, err) = gateway(dir.path(), &["check", "--config", "gateway.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    let v2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(
        v2.serialize_der().len() > 48,
        "rcgen writes v2 (with the public key)"
    );
    std::fs::write(certs.join("signing.pem"), v2.serialize_pem()).unwrap();
    std::fs::write(certs.join("signing.pub.pem"), v2.public_key_pem()).unwrap();
    let (code, out, err) = gateway(dir.path(), &["check", "--config", "gateway.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, token, err) = gateway(
        dir.path(),
        &[
            "token",
            "--config",
            "gateway.toml",
            "--sub",
            "a",
            "--no-session",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(token.trim().split('.').count(), 3);
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway process of a test, killed on drop.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_quick_start_works_with_a_token_file_written_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let (https, http, admin, echo) = (free_port(), free_port(), free_port(), free_port());
    let config = shipped
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{https}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{echo}"));
    assert!(config.contains("token_file = \"certs/admin.token\""));
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let _serving = Serving(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["serve", "--config", "gateway.toml"])
            .current_dir(dir.path())
            .env_remove("GATEWAY_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let token_file = dir.path().join("certs/admin.token");
    let mut up = false;
    for _ in 0..200 {
        if token_file.exists() && std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the gateway did not start within 20 s");
    let admin_token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(admin_token.len(), 43, "32 random bytes, base64url");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The quick start's second command: the session goes through the admin listener.
    let args = [
        "token",
        "--config",
        "gateway.toml",
        "--sub",
        "alice",
        "--role",
        "admin",
        "--sid",
        "demo1",
    ];
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("GATEWAY_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("session demo1 created"), "{err}");
    // Again: the session is alice's, so it is kept as it is and the token minted for it.
    let (code, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("left as it is"), "{err}");
    // Another user cannot take it over: exit 1, nothing replaced.
    let mut mallory = args;
    mallory[4] = "mallory";
    let (code, err) = cli(&mallory);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another user"), "{err}");

    // The README's curl line, with the header from the file: 204, then 404.
    let delete = |auth: Option<&str>| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(gateway::cli::admin_client::request(
            ([127, 0, 0, 1], admin).into(),
            http::Method::DELETE,
            "/sessions/demo1",
            auth.map(str::as_bytes),
            None,
        ))
        .unwrap()
        .0
        .as_u16()
    };
    assert_eq!(delete(None), 401);
    assert_eq!(delete(Some("x".repeat(43).as_str())), 401);
    assert_eq!(delete(Some(&admin_token)), 204);
    assert_eq!(delete(Some(&admin_token)), 404);
}

#[test]
fn check_names_a_bad_admin_table_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = gateway(dir.path(), &["keygen", "--dir", "certs"]);
    assert_eq!(code, 0, "{err}");
    let src = format!("{GOOD}\n[admin]\ntoken_env = \"GW_CLI_TEST_ADMIN_TOKEN\"\n");
    std::fs::write(dir.path().join("gateway.toml"), &src).unwrap();
    let line = src
        .lines()
        .position(|l| l.starts_with("token_env"))
        .unwrap()
        + 1;
    let run = |token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(["check", "--config", "gateway.toml"])
            .current_dir(dir.path())
            .env_remove("GW_CLI_TEST_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("GW_CLI_TEST_ADMIN_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for token in [None, Some("too-short")] {
        let (code, err) = run(token);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("gateway.toml:{line}:13: admin.token_env:")),
            "{token:?}: {err}"
        );
    }
    let (code, err) = run(Some("a-long-enough-admin-token-0123456789abcdef"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_demo_address_in_use_is_a_start_error_that_names_no_demo() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let toml = gateway::config::EMBEDDED_DEFAULT
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("echo = \"127.0.0.1:9000\"", &format!("echo = \"{addr}\""));
    std::fs::write(dir.path().join("gateway.toml"), toml).unwrap();
    let (code, _, err) = gateway(dir.path(), &["serve", "--config", "gateway.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&addr.to_string()) && err.contains("--no-demo"),
        "{err}"
    );
}
