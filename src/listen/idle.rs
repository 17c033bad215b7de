//! Closing client connections that carry no request. hyper's HTTP/1 header read timeout only
//! starts once the protocol is known (hyper-util's auto builder first waits, without a
//! deadline, for the bytes that tell HTTP/1 from HTTP/2), and HTTP/2 has no idle timer at
//! all: a client could finish the TLS handshake (or send the HTTP/2 preface) and hold a
//! connection slot for ever. So each connection counts its requests in flight (a request
//! stays in flight until its response body is done) and [`Activity::idle`] resolves once
//! none has been in flight for the allowed time: `first` before the first request,
//! `between` after it. The server then shuts the connection down gracefully (GOAWAY on HTTP/2).

use std::time::Duration;

use tokio::sync::watch;

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
}

/// Held while a request is in flight; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    counts: watch::Sender<Counts>,
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
        }
    }
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
        InFlight {
            counts: self.counts.clone(),
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
