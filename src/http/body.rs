//! The body type of every response and forwarded request, the wrappers that bound a
//! streamed body (an idle timeout, which hyper lacks, and a size limit: 413), and the request
//! body as it comes from a client (`Inbound`: an HTTP/2 one answered before it was read is
//! drained, so the client finishes its upload and reads the answer).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Streaming body used for everything the gateway sends, both ways.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The one shape of an answer the gateway writes itself (errors, probes, the auth center's
/// and the admin API's answers): a JSON body, `Content-Type: application/json`,
/// `Cache-Control: no-store`. Callers add what is particular (`Retry-After`, a challenge).
pub fn json(status: http::StatusCode, value: &serde_json::Value) -> http::Response<Body> {
    use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
    let mut resp = http::Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A bodyless answer (204, 308, an empty 200).
pub fn status(status: http::StatusCode) -> http::Response<Body> {
    let mut resp = http::Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// A body stalled longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("body idle for longer than {0:?}")]
pub struct BodyIdle(pub Duration);

/// A request body above the route's limit.
#[derive(Debug, thiserror::Error)]
#[error("body larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

pin_project_lite::pin_project! {
    /// Wraps a body: each frame must arrive within `idle` of the previous one, and the total
    /// must stay within `limit` bytes.
    pub struct Bounded<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        idle: Duration,
        remaining: u64,
        limit: u64,
    }
}

impl<B> Bounded<B> {
    pub fn new(inner: B, idle: Duration, limit: u64) -> Self {
        Bounded {
            inner,
            sleep: tokio::time::sleep(idle),
            idle,
            remaining: limit,
            limit,
        }
    }
}

impl<B> http_body::Body for Bounded<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(*this.limit)))));
                    }
                    *this.remaining -= len;
                }
                this.sleep.as_mut().reset(Instant::now() + *this.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(*this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Bounds `inner` and boxes it into a [`Body`].
pub fn bounded<B>(inner: B, idle: Duration, limit: u64) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Bounded::new(inner, idle, limit).boxed_unsync()
}

/// True when `err` (or its source chain) is our body limit.
pub fn is_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyTooLarge>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The most of an HTTP/2 request body dropped unread that is still read (and thrown away):
/// above the default route limit (10 MiB), so a client whose upload was a little too large
/// reads its 413, and small enough that a refused request costs little.
pub const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// How long that reading may take: 16 MiB on any link the gateway serves well, while a client
/// that stalls holds the stream (one of `h2_max_streams`) no longer than this.
pub const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// A request body as a client sends it: hyper's `Incoming`, with one addition on HTTP/2.
/// When the gateway answers before reading the body (401, 404, 405, 413...) and drops it,
/// h2 ends the stream with `RST_STREAM(NO_ERROR)` once the answer is sent, as RFC 9113 8.1
/// allows; but some clients (curl 7.88) fail a stream reset while they are still uploading
/// and never show the answer. So a body dropped before its end is read on and thrown away in
/// a task of its own ([`drain`]), at most [`DRAIN_MAX_BYTES`] within [`DRAIN_MAX_TIME`]: the
/// upload ends, the stream closes normally and the client reads the answer. Past the bound
/// the body is dropped and h2 resets the stream with `NO_ERROR`. HTTP/1.1 needs none of this:
/// hyper reads a little of an unread body, then closes the connection after the answer.
#[derive(Debug)]
pub struct Inbound {
    /// `None` once `Drop` has handed it to the drain.
    inner: Option<Incoming>,
    /// HTTP/2 (also h2c on the plain listeners).
    h2: bool,
    /// `poll_frame` returned the end or an error: nothing left to drain.
    done: bool,
}

impl Inbound {
    /// The request with its body wrapped.
    pub fn wrap(req: Request<Incoming>) -> Request<Inbound> {
        let h2 = req.version() == Version::HTTP_2;
        req.map(|body| Inbound {
            inner: Some(body),
            h2,
            done: false,
        })
    }
}

impl http_body::Body for Inbound {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            this.done = true;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if !self.h2 || self.done {
            return;
        }
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // Outside a runtime (its shutdown) there is nothing to drain for.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let (outcome, bytes) = drain(body, DRAIN_MAX_BYTES, DRAIN_MAX_TIME).await;
                tracing::debug!(?outcome, bytes, "unread HTTP/2 request body drained");
            });
        }
    }
}

/// How a [`drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The body ended: the stream closes normally.
    Ended,
    /// More than the byte bound.
    TooLarge,
    /// Not ended within the time bound.
    TimedOut,
    /// The body failed (the client reset the stream, the connection ended).
    Failed,
}

/// Reads `body` to its end and throws it away, for at most `max_bytes` within `max_time`:
/// how it ended and how many bytes it read.
pub async fn drain<B>(mut body: B, max_bytes: u64, max_time: Duration) -> (Drained, u64)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let deadline = Instant::now() + max_time;
    let mut read = 0u64;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return (Drained::TimedOut, read),
            Ok(None) => return (Drained::Ended, read),
            Ok(Some(Err(_))) => return (Drained::Failed, read),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
            if read > max_bytes {
                return (Drained::TooLarge, read);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_cuts_the_body() {
        let b = bounded(
            Full::new(Bytes::from(vec![0u8; 100])),
            Duration::from_secs(5),
            10,
        );
        let err = b.collect().await.unwrap_err();
        assert!(is_too_large(err.as_ref()));
    }

    #[tokio::test]
    async fn within_limit_passes() {
        let b = bounded(
            Full::new(Bytes::from_static(b"hello")),
            Duration::from_secs(5),
            5,
        );
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_body_errors() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_shim::Rx(rx));
        let b = bounded(stream, Duration::from_millis(50), 1000);
        let err = b.collect().await.unwrap_err();
        assert!(err.is::<BodyIdle>());
    }

    fn chunks(n: usize, size: usize) -> impl http_body::Body<Data = Bytes, Error = BoxError> {
        let frames =
            (0..n).map(move |_| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![0u8; size]))));
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn drain_reads_a_body_to_its_end() {
        assert_eq!(
            drain(chunks(10, 100), 1000, Duration::from_secs(5)).await,
            (Drained::Ended, 1000)
        );
    }

    #[tokio::test]
    async fn drain_stops_past_its_byte_bound() {
        assert_eq!(
            drain(chunks(10, 100), 250, Duration::from_secs(5)).await,
            (Drained::TooLarge, 300)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_stops_at_its_time_bound() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let stream = http_body_util::StreamBody::new(tokio_stream_shim::Rx(rx));
        assert_eq!(
            drain(stream, 1000, Duration::from_secs(5)).await,
            (Drained::TimedOut, 3)
        );
        drop(tx);
    }

    mod tokio_stream_shim {
        use super::*;
        pub struct Rx(pub tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);
        impl futures_util::Stream for Rx {
            type Item = Result<Frame<Bytes>, BoxError>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                self.0.poll_recv(cx)
            }
        }
    }
}
