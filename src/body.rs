//! The body type of every response and forwarded request, and the wrappers that bound a
//! streamed body: an idle timeout (hyper has none) and a size limit (413).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
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
