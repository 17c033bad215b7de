//! The OpenID login in a real browser: headless Debian chromium, driven by
//! `tests/oidc/browser.mjs` (playwright-core), against the gateway and the real provider of
//! `support::sso` (the setup of tests/oidc_login.rs).
//!
//! Only a browser enforces `SameSite`, `__Host-` and `Secure` on the redirects between the
//! provider (`http://127.0.0.1:<p>`) and the gateway (`https://127.0.0.1:<g>`: another site,
//! the scheme differs). The callback answers a page that moves to `return_to` by itself,
//! because Chromium sends no `SameSite=Strict` cookie on a navigation that the provider's
//! cross-site redirect began: these tests check that the access cookie really goes with the
//! first request to `return_to`, as Chromium keeps it, and that another browser cannot use a
//! captured callback.
//!
//! chromium must be installed (`scripts/test.sh` installs it; `CHROMIUM_PATH` names another
//! binary): without it these tests fail, they never skip.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::sso::{start, Sso, CALLBACK};

/// The whole node run (browser.mjs bounds itself at 50 s).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);
const RETURN_TO: &str = "/api/app";

/// The browser binary: `CHROMIUM_PATH`, else Debian's. Missing is a failure, not a skip.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "chromium not found at {} (CHROMIUM_PATH, else /usr/bin/chromium): this test needs a \
         real browser; scripts/test.sh installs Debian's chromium \
         (apt-get install chromium)",
        path.display()
    );
    path
}

/// Runs `node tests/oidc/browser.mjs --scenario <scenario>` with the browser `chromium`
/// against `s` and returns its JSON report; panics (with what the browser went through and
/// node's stderr) when it fails or outlives [`BROWSER_TIMEOUT`].
async fn run_browser(s: &Sso, chromium: &Path, scenario: &str) -> Value {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "tests/node_modules/playwright-core is missing: run `npm ci --prefix tests` \
         (scripts/test.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(tests.join("oidc/browser.mjs"))
        .args(["--scenario", scenario])
        .args([
            "--start",
            &s.url(&format!("/auth/oidc/login?return_to={RETURN_TO}")),
        ])
        .args(["--until", &s.url(RETURN_TO)])
        .args(["--callback", &s.url(CALLBACK)])
        .args(["--user", "alice"])
        .env("CHROMIUM_PATH", chromium)
        .env_remove("NODE_OPTIONS")
        .env_remove("DEBUG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, out, err, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (is it installed?): {e}"));
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > BROWSER_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            status,
            out.join().unwrap(),
            err.join().unwrap(),
            started.elapsed(),
        )
    })
    .await
    .unwrap();
    eprintln!("browser.mjs --scenario {scenario}: {took:?}, {status:?}\n{err}");
    let status = status.unwrap_or_else(|| {
        panic!("browser.mjs outlived {BROWSER_TIMEOUT:?} and was killed; stdout:\n{out}")
    });
    let report: Value = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("browser.mjs printed no JSON ({status}); stdout:\n{out}"));
    assert!(
        status.success() && report.get("error").is_none(),
        "the browser run failed ({status}): {}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    eprintln!("{report:#}");
    report
}

/// The cookie `name` as Chromium holds it, if it does.
fn cookie<'r>(cookies: &'r Value, name: &str) -> Option<&'r Value> {
    cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
}

/// A session cookie the gateway set: `Secure`, `HttpOnly`, `SameSite=Strict`, on `path`.
fn assert_strict(cookies: &Value, name: &str, path: &str) {
    let c = cookie(cookies, name).unwrap_or_else(|| panic!("no {name} in {cookies:#}"));
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert_eq!(c["secure"], true, "{c}");
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["path"], path, "{c}");
}

/// The identity the upstream saw on the (one) request for `RETURN_TO`.
fn upstream_identity(s: &Sso) -> Option<String> {
    let seen: Vec<_> =
        s.up.requests()
            .into_iter()
            .filter(|r| r.target == RETURN_TO)
            .collect();
    assert_eq!(seen.len(), 1, "requests for {RETURN_TO}: {seen:?}");
    seen[0].one("x-user-id")
}

#[tokio::test]
async fn chromium_signs_in_and_its_strict_access_cookie_goes_with_the_first_request() {
    let chromium = chromium();
    let s = start().await;
    // Both on 127.0.0.1 (ports do not make sites): the provider is another site only by its
    // scheme (Chromium's schemeful same-site). Were both https, the redirect back would be
    // same-site and this test would no longer tell a 302 from the page's own navigation.
    assert!(s.provider.issuer().starts_with("http://127.0.0.1:"));
    assert!(s.origin.starts_with("https://127.0.0.1:"));
    let report = run_browser(&s, &chromium, "login").await;
    let pretty = serde_json::to_string_pretty(&report).unwrap();

    assert_eq!(report["final_url"], s.url(RETURN_TO), "{pretty}");
    assert_eq!(report["status"], 200, "{pretty}");
    // The callback page's own navigation is same-site: the Strict cookie went with it.
    let sent = report["sent_cookies"].as_array().unwrap();
    assert!(sent.iter().any(|c| c == "__Host-gw_access"), "{pretty}");
    assert_eq!(
        upstream_identity(&s).as_deref(),
        Some("sso:sub-alice"),
        "{pretty}"
    );

    let cookies = &report["cookies"];
    assert_strict(cookies, "__Host-gw_access", "/");
    assert_strict(cookies, "__Secure-gw_refresh", "/auth");
    assert_strict(cookies, "__Host-gw_device", "/");
    // The login cookie (Lax, for the provider's redirect back) is spent: the callback expired it.
    assert!(cookie(cookies, "__Host-gw_oidc").is_none(), "{pretty}");
}

#[tokio::test]
async fn a_callback_opened_in_another_browser_is_400_and_the_login_goes_on() {
    let chromium = chromium();
    let s = start().await;
    let report = run_browser(&s, &chromium, "replay").await;
    let pretty = serde_json::to_string_pretty(&report).unwrap();

    let callback = report["callback"].as_str().unwrap();
    assert!(callback.starts_with(&s.url(CALLBACK)), "{pretty}");
    assert!(callback.contains("code=") && callback.contains("state="));

    // Another browser (no login cookie): 400, and it holds no session.
    let other = &report["other"];
    assert_eq!(other["status"], 400, "{pretty}");
    assert!(
        other["body"].as_str().unwrap().contains("login_failed"),
        "{pretty}"
    );
    assert!(cookie(&other["cookies"], "__Host-gw_access").is_none());

    // The browser that began the login finishes it.
    let original = &report["original"];
    assert_eq!(original["final_url"], s.url(RETURN_TO), "{pretty}");
    assert_eq!(original["status"], 200, "{pretty}");
    assert_strict(&original["cookies"], "__Host-gw_access", "/");
    assert_eq!(
        upstream_identity(&s).as_deref(),
        Some("sso:sub-alice"),
        "{pretty}"
    );
}
