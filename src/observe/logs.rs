//! Logging: tracing to stderr as text or JSON, filtered by `RUST_LOG` (default `info`). The
//! access log is the `access` target, one line per request; it never carries a token.
//!
//! Lines are written by a thread of their own, in batches through a buffer (as nginx's
//! `access_log ... buffer=`): a request formats its line and hands it over, and never waits
//! on a write to stderr, a pipe or a slow disk. The handover is bounded and not lossy: when
//! [`QUEUED_LINES`] lines wait, the next one waits for room (an access log that drops lines
//! would be no audit trail). A lone line is written at once; under load the writer takes
//! what is queued every 2 ms, so no request has to wake it; dropping the
//! [`LogGuard`] (the end of `main`) writes every line still queued, waiting for a slow reader
//! for up to [`EXIT_WAIT`].

use std::io::{BufWriter, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines that may wait for the writer thread before a request waits for room.
pub const QUEUED_LINES: usize = 16_384;
/// The writer's buffer: one write to stderr carries this much at most.
const WRITE_BUFFER: usize = 64 * 1024;
/// While lines come fast, how long the writer gathers them between two batches.
const BATCH_EVERY: Duration = Duration::from_millis(2);
/// How long the end of the process waits for the queued lines to be written (a reader that
/// takes none at all must not keep the process forever).
pub const EXIT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

enum Msg {
    Line(Vec<u8>),
    /// Write everything before it, then stop.
    End,
}

/// Keeps the writer thread; dropping it writes what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    writer: Option<(SyncSender<Msg>, JoinHandle<()>, Receiver<()>)>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some((tx, thread, done)) = self.writer.take() else {
            return;
        };
        // In order after every line already queued; waits for room like a line would.
        if tx.send(Msg::End).is_ok() {
            match done.recv_timeout(EXIT_WAIT) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                // stderr takes nothing: leave the thread, the process is ending anyway.
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (tx, rx) = mpsc::sync_channel(QUEUED_LINES);
    let (done_tx, done) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("gw-log-writer".into())
        .spawn(move || {
            write_lines(
                &rx,
                BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()),
            );
            let _ = done_tx.send(());
        });
    let Ok(thread) = thread else {
        // No thread: write on the caller's thread, unbuffered, rather than not at all.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        let _ = match format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return LogGuard { writer: None };
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(Queue(tx.clone()));
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        // Another subscriber is in place: this writer is not used.
        let _ = tx.send(Msg::End);
        return LogGuard { writer: None };
    }
    LogGuard {
        writer: Some((tx, thread, done)),
    }
}

/// The writer thread: it waits for a line, takes everything queued with it, writes it
/// through the buffer and flushes; until [`Msg::End`] (or every sender is gone). When a batch
/// held more than one line, lines are coming fast: it then sleeps [`BATCH_EVERY`] before the
/// next one instead of waiting on the queue, so under load a request that queues a line does
/// not wake it (a wake-up per line costs a system call and a context switch, on the same core
/// as the requests when the process is pinned to one). A lone line is written at once. A
/// failed write is dropped: there is nowhere left to report it.
fn write_lines(rx: &Receiver<Msg>, mut out: impl Write) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut lines = 0usize;
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                    lines += 1;
                }
                Msg::End => {
                    let _ = out.flush();
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        if lines > 1 {
            std::thread::sleep(BATCH_EVERY);
        }
    }
    let _ = out.flush();
}

/// What the fmt layer writes each event to: the event's line (written whole, in one call)
/// is queued for the writer thread.
#[derive(Clone)]
struct Queue(SyncSender<Msg>);

impl Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Waits for room when the queue is full; fails only once the writer has stopped.
        self.0
            .send(Msg::Line(buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Queue;
    fn make_writer(&'a self) -> Queue {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records what reached it and how often it was flushed.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    #[test]
    fn every_line_before_the_end_is_written_in_order() {
        let (tx, rx) = mpsc::sync_channel(4);
        let sink = Sink::default();
        let out = sink.clone();
        let thread = std::thread::spawn(move || write_lines(&rx, out));
        for i in 0..100 {
            tx.send(Msg::Line(format!("{i}\n").into_bytes())).unwrap();
        }
        tx.send(Msg::End).unwrap();
        thread.join().unwrap();
        let (bytes, flushes) = sink.0.lock().unwrap().clone();
        let want: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(bytes).unwrap(), want);
        assert!(flushes >= 1);
    }
}
