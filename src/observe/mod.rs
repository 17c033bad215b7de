//! What the gateway tells its operators: Prometheus metrics, OTLP spans, and the logs.

pub mod logs;
pub mod metrics;
pub mod otlp;
