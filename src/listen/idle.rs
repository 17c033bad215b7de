//! Closing client connections that carry no request. hyper's HTTP/1 header read timeout only
//! starts once the protocol is known (hyper-util's auto builder first waits, without a
//! deadline, for the bytes that tell HTTP/1 from HTTP/2), and HTTP/2 has no idle timer at
//! all: a client could finish the TLS handshake (or send the HTTP/2 preface) and hold a
//! connection slot for ever. So each connection counts its requests in flight (a request
//! stays in flight until its response body is done) and [`Activity::idle`] resolves once
//! none has been in flight for the allowed time: `first` before the first request,
//! `between` after it. The server then shuts the connection down gracefully (GOAWAY on HTTP/2).
//!
//! A request in flight must also move: once its answer has begun, each frame of the response
//! body the client's connection takes is progress ([`InFlight::progressed`]; hyper asks for
//! the next frame only when the previous one is on its way, so a client that stops reading,
//! or opens a zero HTTP/2 window, makes none). [`Activity::stalled`] resolves when an answer
//! has made no progress for the allowed time, and the server then closes the connection: a
//! client cannot hold a connection slot, and the upstream connections behind its streams, by
//! never reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Not answering yet: an answer's clock starts when its head is sent.
const NOT_STARTED: u64 = u64::MAX;

/// One connection's requests: how many are in flight, how many ever began.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    in_flight: usize,
    begun: u64,
}

/// One connection's requests in flight.
#[derive(Debug)]
pub struct Activity {
    counts: watch::Sender<Counts>,
    /// When the connection began: progress stamps are milliseconds since.
    epoch: Instant,
    /// The last progress of each answer in flight (dropped ones are pruned).
    answers: Mutex<Vec<std::sync::Weak<AtomicU64>>>,
}

/// Held while a request is in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    counts: watch::Sender<Counts>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the answer's last progress, or [`NOT_STARTED`].
    last: Arc<AtomicU64>,
}

impl InFlight {
    /// The answer moved: its head went out, or the client took a frame of its body.
    pub fn progressed(&self) {
        self.last.store(millis_since(self.epoch), Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counts
            .send_modify(|c| c.in_flight = c.in_flight.saturating_sub(1));
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            counts: watch::Sender::new(Counts::default()),
            epoch: Instant::now(),
            answers: Mutex::new(Vec::new()),
        }
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(NOT_STARTED - 1)
}

impl Activity {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a request as begun.
    pub fn begin(&self) -> InFlight {
        self.counts.send_modify(|c| {
            c.in_flight += 1;
            c.begun += 1;
        });
        let last = Arc::new(AtomicU64::new(NOT_STARTED));
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.retain(|a| a.strong_count() > 0);
        answers.push(Arc::downgrade(&last));
        InFlight {
            counts: self.counts.clone(),
            epoch: self.epoch,
            last,
        }
    }

    /// Resolves when an answer in flight has made no progress for `limit` (see the module
    /// docs). Checked a few times per `limit`, so it resolves within about 1.25 x `limit`.
    pub async fn stalled(&self, limit: Duration) {
        let every = (limit / 4).max(Duration::from_millis(50));
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::time::sleep(every).await;
            let now = millis_since(self.epoch);
            let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            let stuck = answers
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .any(|a| {
                    let last = a.load(Ordering::Relaxed);
                    last != NOT_STARTED && now.saturating_sub(last) > limit_ms
                });
            if stuck {
                return;
            }
        }
    }

    /// True once any request has begun on this connection.
    pub fn any_began(&self) -> bool {
        self.counts.borrow().begun > 0
    }

    /// Resolves when no request has been in flight for `first` (no request yet) or
    /// `between` (after one).
    pub async fn idle(&self, first: Duration, between: Duration) {
        let mut rx = self.counts.subscribe();
        loop {
            // The sender lives in `self`, so these never see it gone.
            let begun = rx.wait_for(|c| c.in_flight == 0).await.map(|c| c.begun);
            let Ok(begun) = begun else {
                return std::future::pending().await;
            };
            let limit = if begun == 0 { first } else { between };
            tokio::select! {
                _ = tokio::time::sleep(limit) => return,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(2);
    const BETWEEN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn idle_from_the_start() {
        let a = Activity::new();
        let start = tokio::time::Instant::now();
        a.idle(FIRST, BETWEEN).await;
        assert_eq!(start.elapsed(), FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_stops_moving_is_stalled_and_one_waiting_for_its_upstream_is_not() {
        const LIMIT: Duration = Duration::from_secs(30);
        let a = std::sync::Arc::new(Activity::new());
        let waiting = a.begin();
        let answering = a.begin();
        answering.progressed();
        let watcher = {
            let a = a.clone();
            tokio::spawn(async move { a.stalled(LIMIT).await })
        };
        // Frames taken now and then: progress.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            answering.progressed();
        }
        assert!(!watcher.is_finished());
        // The client stops reading: stalled within 1.25 x LIMIT; the request still waiting
        // for its upstream never counted.
        let stopped = tokio::time::Instant::now();
        watcher.await.expect("stalled task");
        assert!(
            stopped.elapsed() > LIMIT
                && stopped.elapsed() <= LIMIT + LIMIT / 4 + Duration::from_secs(1)
        );
        drop((waiting, answering));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_not_idle_and_then_the_longer_limit_applies() {
        let a = std::sync::Arc::new(Activity::new());
        let req = a.begin();
        let watcher = {
            let a = a.clone();
            tokio::spawn(async move { a.idle(FIRST, BETWEEN).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!watcher.is_finished());
        let ended = tokio::time::Instant::now();
        drop(req);
        watcher.await.expect("idle task");
        assert_eq!(ended.elapsed(), BETWEEN);
    }
}
