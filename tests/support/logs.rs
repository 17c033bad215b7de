//! The gateway's log lines, captured as JSON in a test: [`capture`] installs a JSON
//! subscriber for the current thread (the test runtime is single-threaded, so the gateway's
//! tasks log on it) and keeps what it writes until the guard is dropped.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The access log line (JSON) with this request id.
    pub fn access_line(&self, rid: &str) -> serde_json::Value {
        let text = self.text();
        text.lines()
            .filter(|l| l.contains(rid))
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["target"] == "access").then_some(v)
            })
            .unwrap_or_else(|| panic!("no access log line for {rid} in {text}"))
    }
}

/// Keeps the capture installed while it lives.
pub struct Capture {
    pub logs: Captured,
    _guard: tracing::dispatcher::DefaultGuard,
    _second: tracing::Dispatch,
}

/// JSON log lines (info and above) of this thread, from now until the guard is dropped.
pub fn capture() -> Capture {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // With a single registered dispatcher, tracing decides a callsite's interest by the
    // default of whichever thread hits it first (another test's, with none): a second one
    // makes it ask every registered dispatcher.
    let second = tracing::Dispatch::new(tracing_subscriber::registry());
    let capture = tracing::Dispatch::new(subscriber);
    let guard = tracing::dispatcher::set_default(&capture);
    Capture {
        logs,
        _guard: guard,
        _second: second,
    }
}
