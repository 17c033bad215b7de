//! Logging: tracing to stderr as text or JSON, filtered by `RUST_LOG` (default `info`). The
//! access log is the `access` target, one line per request; it never carries a token.
//!
//! Lines are written by a thread of their own, in batches through a buffer (as nginx's
//! `access_log ... buffer=`): a request formats its line and hands it over, and never waits
//! on a write to stderr, a pipe or a slow disk. The handover is bounded and not lossy: when
//! [`QUEUED_LINES`] lines wait, the next one waits for room (an access log that drops lines
//! would be no audit trail). Every batch is flushed when the queue runs empty, and the rest
//! when the [`LogGuard`] is dropped (the end of `main`).

use std::io::BufWriter;

use tracing_subscriber::EnvFilter;

/// Lines that may wait for the writer thread before a request waits for room.
pub const QUEUED_LINES: usize = 16_384;
/// The writer's buffer: one write to stderr carries this much at most.
const WRITE_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the writer thread; dropping it writes what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
}

pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, worker) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("gw-log-writer")
        .finish(BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    LogGuard {
        // Already installed (tests that start several gateways in one process): the writer
        // made here is not the one in use, so it is dropped at once.
        _worker: installed.is_ok().then_some(worker),
    }
}
