//! The real `curl` binary against a test gateway, for what a widely used client does with the
//! gateway's answers (HTTP/2 early answers, SETTINGS_MAX_HEADER_LIST_SIZE).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const CURL: &str = "/usr/bin/curl";

/// What curl printed: its exit code, `-w '%{http_code} %{http_version}'`, and the body.
#[derive(Debug)]
pub struct Curl {
    pub rc: i32,
    pub status: u16,
    pub version: String,
    pub body: String,
    pub stderr: String,
}

/// True when `/usr/bin/curl` exists; tests that need it say so and pass without it.
pub fn available() -> bool {
    let there = Path::new(CURL).exists();
    if !there {
        eprintln!("{CURL} not found: the curl checks are skipped");
    }
    there
}

/// `curl -sS -k --resolve localhost:PORT:127.0.0.1 ARGS https://localhost:PORT{path}`, run on
/// a blocking thread (the gateway under test shares the test's runtime), within 60 s.
pub async fn run(https: SocketAddr, path: &str, args: &[&str]) -> Curl {
    run_with_stdin(https, path, args, None).await
}

/// [`run`] with curl's stdin read from `stdin` (for `-T -`: an upload of unknown length).
pub async fn run_with_stdin(
    https: SocketAddr,
    path: &str,
    args: &[&str],
    stdin: Option<PathBuf>,
) -> Curl {
    let port = https.port();
    let mut cmd = Command::new(CURL);
    cmd.args(["-sS", "-k", "--max-time", "60", "-o", "-"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:{}", https.ip()))
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .arg(format!("https://localhost:{port}{path}"));
    let out = tokio::task::spawn_blocking(move || {
        match stdin {
            Some(p) => cmd.stdin(std::fs::File::open(p)?),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.output()
    })
    .await
    .unwrap()
    .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut w = last.split_whitespace();
    let status = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = w.next().unwrap_or_default().to_owned();
    Curl {
        rc: out.status.code().unwrap_or(-1),
        status,
        version,
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
