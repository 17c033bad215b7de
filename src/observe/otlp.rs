//! OTLP trace export (`[otlp]`): one server span per request on the TLS listener, sent in
//! batches over OTLP/HTTP (protobuf) by the OpenTelemetry SDK from its own thread, so the
//! request path only records. The span joins the caller's trace (its parent is the caller's
//! span from `traceparent`) and is the parent the upstream sees, so a trace shows the caller,
//! then the gateway (with its time and verdict), then the service. Sampling follows the
//! caller's flag; a trace the gateway starts is sampled.

use std::time::SystemTime;

use http::Method;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config;
use crate::http::trace_context::TraceContext;

/// The exporter and its tracer; spans still queued are flushed when the last handle drops.
pub struct Otlp {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    cfg: config::Otlp,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("endpoint", &self.cfg.endpoint)
            .finish_non_exhaustive()
    }
}

/// The gateway's span for one request, open until [`RequestSpan::finish`].
pub struct RequestSpan(opentelemetry_sdk::trace::Span);

/// What a finished request adds to its span.
pub struct Finished<'a> {
    pub method: &'a Method,
    /// The route prefix, `auth_center`, or `none`.
    pub route: &'a str,
    pub status: u16,
    pub user_id: Option<&'a str>,
    pub denial: Option<&'static str>,
    pub request_id: String,
}

impl Otlp {
    /// Builds the exporter (no connection is made until the first batch).
    pub fn new(cfg: &config::Otlp) -> Result<Otlp, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.to_string())
            .with_timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("otlp.endpoint: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("gateway");
        Ok(Otlp {
            provider,
            tracer,
            cfg: cfg.clone(),
        })
    }

    /// Exports every span recorded so far (blocking: call it off the runtime's threads).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "otlp: could not export the last spans");
        }
    }

    /// The config this exporter was built from (a reload keeps an exporter whose config did
    /// not change).
    pub fn config(&self) -> &config::Otlp {
        &self.cfg
    }

    /// Opens the request's span, child of the caller's span when `trace` continues its
    /// trace, and makes `trace` name it as the upstream's parent.
    pub fn start_span(&self, trace: &mut TraceContext) -> RequestSpan {
        let parent = match trace.caller() {
            Some((trace_id, span_id, flags)) => {
                Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from_bytes(trace_id.to_be_bytes()),
                    SpanId::from_bytes(span_id.to_be_bytes()),
                    TraceFlags::new(flags),
                    true,
                    TraceState::default(),
                ))
            }
            None => Context::new(),
        };
        let span = self
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        let sc = opentelemetry::trace::Span::span_context(&span);
        trace.set_gateway_span(
            u128::from_be_bytes(sc.trace_id().to_bytes()),
            u64::from_be_bytes(sc.span_id().to_bytes()),
            sc.is_sampled(),
        );
        RequestSpan(span)
    }
}

impl RequestSpan {
    /// Names the span, adds the verdict and ends it (queued for export).
    pub fn finish(mut self, f: Finished<'_>) {
        use opentelemetry::trace::Span as _;
        let span = &mut self.0;
        span.update_name(format!("{} {}", f.method, f.route));
        span.set_attribute(KeyValue::new(
            "http.request.method",
            f.method.as_str().to_owned(),
        ));
        span.set_attribute(KeyValue::new("http.route", f.route.to_owned()));
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(f.status),
        ));
        span.set_attribute(KeyValue::new("gateway.request_id", f.request_id));
        if let Some(u) = f.user_id {
            span.set_attribute(KeyValue::new("enduser.id", u.to_owned()));
        }
        if let Some(d) = f.denial {
            span.set_attribute(KeyValue::new("gateway.denial", d));
        }
        if f.status >= 500 {
            span.set_status(Status::error(format!("status {}", f.status)));
        }
        span.end_with_timestamp(SystemTime::now());
    }
}

impl Drop for Otlp {
    /// Flushes and stops the exporter on a thread of its own: it may wait for the collector,
    /// and this drop can happen on a runtime thread (a reload that changed `[otlp]`).
    fn drop(&mut self) {
        let provider = self.provider.clone();
        let _ = std::thread::Builder::new()
            .name("otlp-shutdown".into())
            .spawn(move || {
                if let Err(e) = provider.shutdown() {
                    tracing::debug!(error = %e, "otlp exporter shutdown");
                }
            });
    }
}
