//! Zero-downtime restart by socket hand-over: on SIGUSR2 the running gateway starts a new copy
//! of its binary with the same arguments and passes it the listening sockets (the systemd
//! `LISTEN_FDS` protocol), waits for it to say `READY=1` (the `sd_notify` protocol, on a
//! private socket), then stops accepting and drains. The socket is never closed, so no
//! connection attempt is refused or reset in between; if the new process fails to start, the
//! old one keeps serving. The same code lets systemd pass sockets in (socket activation) and
//! hears `READY=1` from a gateway started with `Type=notify`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpListener;

/// How long a new process has to load its config and say it is ready.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The first inherited descriptor (systemd's `SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Where the process that started this one wants `MAINPID=` told when a hand-over completes
/// (systemd's notify socket, carried through earlier hand-overs).
const SUPERVISOR_ENV: &str = "GATEWAY_SUPERVISOR_NOTIFY_SOCKET";

/// Listening sockets passed in by a previous gateway (or systemd), by name.
pub struct Inherited {
    fds: listenfd::ListenFd,
    names: Vec<String>,
}

impl Inherited {
    /// None: for a gateway that binds everything itself (tests, embedding).
    pub fn none() -> Inherited {
        Inherited {
            fds: listenfd::ListenFd::empty(),
            names: Vec::new(),
        }
    }

    /// Reads `LISTEN_FDS` / `LISTEN_FDNAMES` (and `LISTEN_PID` when set); empty when absent.
    /// Call it first thing in `main`, before any other thread runs: it removes those
    /// variables from the environment.
    pub fn from_env() -> Inherited {
        let names = std::env::var("LISTEN_FDNAMES")
            .map(|n| n.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        Inherited {
            fds: listenfd::ListenFd::from_env(),
            names,
        }
    }

    /// Closes every inherited socket no listener took (a listener the new config dropped or
    /// moved): left open, the kernel would complete connections nobody accepts.
    pub fn close_rest(mut self) {
        for idx in 0..self.fds.len() {
            if let Ok(Some(l)) = self.fds.take_tcp_listener(idx) {
                let name = self.names.get(idx).map(String::as_str).unwrap_or("?");
                tracing::info!(listener = name, addr = ?l.local_addr().ok(),
                    "closing an inherited socket the config no longer listens on");
            }
        }
    }

    /// The inherited listener named `name`, when it is bound where the config says (`addr`
    /// with port 0 matches any port on the same IP).
    pub fn take(&mut self, name: &str, addr: SocketAddr) -> io::Result<Option<TcpListener>> {
        let Some(idx) = self.names.iter().position(|n| n == name) else {
            return Ok(None);
        };
        let Some(std) = self.fds.take_tcp_listener(idx)? else {
            return Ok(None);
        };
        let local = std.local_addr()?;
        let same = local == addr || (addr.port() == 0 && local.ip() == addr.ip());
        if !same {
            tracing::warn!(listener = name, inherited = %local, configured = %addr,
                "the inherited socket is not where the config listens now; binding anew");
            return Ok(None);
        }
        std.set_nonblocking(true)?;
        tracing::info!(listener = name, addr = %local, "took over an inherited listening socket");
        TcpListener::from_std(std).map(Some)
    }
}

/// The bound listeners, by name, without keeping them open: once a listener's serve loop
/// stops (shutdown), it is closed even though this handle remains.
#[derive(Clone, Default)]
pub struct Listeners(Vec<(&'static str, Weak<TcpListener>)>);

impl Listeners {
    pub fn new(list: Vec<(&'static str, &Arc<TcpListener>)>) -> Listeners {
        Listeners(
            list.into_iter()
                .map(|(n, l)| (n, Arc::downgrade(l)))
                .collect(),
        )
    }

    /// Duplicates of every listener still open.
    fn dup(&self) -> io::Result<Vec<(&'static str, OwnedFd)>> {
        let mut out = Vec::new();
        for (name, l) in &self.0 {
            let Some(l) = l.upgrade() else {
                return Err(io::Error::other(format!(
                    "the {name} listener is already closed"
                )));
            };
            out.push((*name, l.as_fd().try_clone_to_owned()?));
        }
        Ok(out)
    }
}

/// Tells whoever started this process that it is serving: systemd (`Type=notify`) or the
/// gateway handing its sockets over. Nothing when `NOTIFY_SOCKET` is unset.
pub fn notify_ready() {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = notify(&socket, "READY=1\n") {
            tracing::warn!(socket = ?socket, error = %e, "cannot send READY=1");
        }
    }
}

/// Starts the new process with the listeners and waits until it is ready; its PID on success.
/// On failure the new process is killed (if it still runs) and the caller keeps serving.
pub async fn hand_over(listeners: &Listeners, timeout: Duration) -> Result<u32, String> {
    if std::env::var_os("INVOCATION_ID").is_some() && supervisor_socket().is_none() {
        return Err(
            "running under systemd without Type=notify: systemd would take this \
                    process's exit for the service's and stop the new one; use Type=notify"
                .into(),
        );
    }
    let fds = listeners
        .dup()
        .map_err(|e| format!("cannot duplicate the listening sockets: {e}"))?;
    let dir = private_dir().map_err(|e| format!("cannot make a notify socket: {e}"))?;
    let result = spawn_and_wait(fds, &dir.0, timeout).await;
    if let Ok(pid) = result {
        if let Some(supervisor) = supervisor_socket() {
            if let Err(e) = notify(&supervisor, &format!("MAINPID={pid}\n")) {
                tracing::warn!(error = %e, "cannot tell the supervisor the new main PID");
            }
        }
    }
    result
}

async fn spawn_and_wait(
    fds: Vec<(&'static str, OwnedFd)>,
    dir: &Path,
    timeout: Duration,
) -> Result<u32, String> {
    use command_fds::{CommandFdExt, FdMapping};
    let socket_path = dir.join("notify");
    let socket = tokio::net::UnixDatagram::bind(&socket_path)
        .map_err(|e| format!("cannot bind {}: {e}", socket_path.display()))?;
    let exe = executable().map_err(|e| format!("cannot find the gateway binary: {e}"))?;
    let names: Vec<&str> = fds.iter().map(|(n, _)| *n).collect();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env_remove("LISTEN_PID")
        .env("NOTIFY_SOCKET", &socket_path);
    cmd.env(SUPERVISOR_ENV, supervisor_socket().unwrap_or_default());
    let mappings = fds
        .into_iter()
        .zip(LISTEN_FDS_START..)
        .map(|((_, fd), child_fd)| FdMapping {
            parent_fd: fd,
            child_fd,
        })
        .collect();
    cmd.fd_mappings(mappings)
        .map_err(|e| format!("cannot map the sockets: {e}"))?;
    let mut child = ChildGuard(Some(
        cmd.spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?,
    ));
    let pid = child.id();
    tracing::info!(pid, listeners = ?names, "started the new gateway; waiting for READY=1");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = socket.recv(&mut buf) => {
                let msg = String::from_utf8_lossy(&buf[..r.map_err(|e| e.to_string())?]).into_owned();
                if msg.lines().any(|l| l == "READY=1") {
                    child.disarm();
                    return Ok(pid);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("the new gateway (pid {pid}) exited before it was ready: {status}"));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(format!("the new gateway (pid {pid}) was not ready within {timeout:?}; killed it"));
            }
        }
    }
}

/// The new process until it is ready: killed and reaped if the hand-over ends any other way
/// (an error, a timeout, or the old process shutting down meanwhile), so two gateways never
/// end up serving with nobody in charge of the second.
struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    fn id(&self) -> u32 {
        self.0.as_ref().map(std::process::Child::id).unwrap_or(0)
    }

    fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        match self.0.as_mut() {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// It is ready: it runs on its own from now on.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The socket to tell about a new main PID: the one passed through earlier hand-overs (set,
/// maybe empty, in every hand-over child), else systemd's own when systemd started this
/// process directly.
fn supervisor_socket() -> Option<OsString> {
    match std::env::var_os(SUPERVISOR_ENV) {
        Some(s) => Some(s),
        None => std::env::var_os("NOTIFY_SOCKET"),
    }
    .filter(|s| !s.is_empty())
}

/// One `sd_notify` datagram to `socket` (a path, or `@name` for an abstract socket).
fn notify(socket: &OsStr, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(io::Error::other(
                "abstract notify sockets exist on Linux only",
            ));
        }
    }
    sock.send_to(msg.as_bytes(), Path::new(socket))?;
    Ok(())
}

/// The running binary. After an upgrade replaced it on disk, Linux names the old one
/// "<path> (deleted)": the new file at that path is the one to start.
fn executable() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let s = exe.as_os_str().to_string_lossy();
    Ok(match s.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

const DIR_PREFIX: &str = "gateway-handover-";

/// A 0700 directory for the notify socket, removed when dropped.
struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn private_dir() -> io::Result<PrivateDir> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(PrivateDir(dir))
}
