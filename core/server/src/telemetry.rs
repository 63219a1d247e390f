//! Logs and traces (docs/tracing.md).
//!
//! - Logs: text or, with `LOG_FORMAT=json`, one JSON object per line carrying the `request_id`,
//!   `trace_id` and `span_id` of the API call it belongs to.
//! - Traces: OpenTelemetry over OTLP/HTTP (protobuf), on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, configured by the standard `OTEL_*` variables
//!   (service name, sampler, batch processor). Off, no span leaves the process and the engine's
//!   debug-level spans are not even created (their callsites are disabled).
//!
//! Every API call (gRPC method, REST route, GraphQL, WebSocket upgrade) runs in one server span
//! made by [`api_call`], whose parent is the caller's W3C `traceparent`; the engine and store
//! spans are its children.

use std::collections::HashMap;
use std::fmt;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::field::Empty;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{span, Event, Level, Metadata, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The header (and gRPC metadata key) carrying a request id, taken from the caller when it
/// sends one and returned in every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What keeps traces flowing; [`Telemetry::shutdown`] exports what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter. Call outside the async runtime
    /// (the exporter's HTTP client blocks).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(err) = provider.shutdown() {
                eprintln!("syros: exporting the last spans failed: {err}");
            }
        }
    }
}

/// Whether the `OTEL_*` variables ask for trace export.
fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The OTLP tracer provider, from the `OTEL_*` variables. Must run outside the async runtime
/// (the blocking HTTP client refuses to start inside one).
fn tracer_provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the OTLP trace exporter: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("syros");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Install the log subscriber (and, when configured, the trace exporter). `log_level` is an
/// `EnvFilter` directive for the log lines only; spans exported as traces are the server's
/// and engine's at DEBUG and above, whatever the log level.
pub fn init(log_level: &str, json_logs: bool) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(log_level)
        .map_err(|e| anyhow::anyhow!("LOG_LEVEL {log_level:?} is not a valid filter: {e}"))?;
    let logs = if json_logs {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithIds(format::format().json()))
            .with_filter(AskEveryTime(filter))
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(AskEveryTime(filter))
            .boxed()
    };
    let provider = if otlp_configured() {
        Some(tracer_provider()?)
    } else {
        None
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("syros"))
            .with_filter(AskEveryTime(filter_fn(|meta| {
                let ours = meta.target().starts_with("syros");
                if meta.is_span() {
                    ours && *meta.level() <= Level::DEBUG
                } else {
                    // Log lines become span events from INFO up.
                    ours && *meta.level() <= Level::INFO
                }
            })))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP (docs/tracing.md)");
    }
    Ok(Telemetry { provider })
}

/// A per-layer filter whose callsites are never cached as "always enabled", so the subscriber
/// asks the filters before every span and event. Both the log and the trace layer's filters are
/// wrapped in it.
///
/// Why: tracing-subscriber hands each per-layer filter's decision from `enabled` to `new_span`
/// or `on_event` through a thread-local; a callsite cached as always-enabled skips `enabled`, so
/// its span or event inherits whatever the previous `enabled` call on that thread left there.
/// sqlx's query logger calls `log::log_enabled!` after every statement (through tracing-log, a
/// bare `enabled` with no event after it), which left "disabled" behind on the runtime's
/// threads: on PostgreSQL, an API call's server span that followed on the same thread was never
/// seen by the trace layer, and a log line could be dropped the same way
/// (tokio-rs/tracing#2519; upstream fix proposed in tokio-rs/tracing#3572). Capping the
/// interest at "sometimes" makes every callsite these filters enable go through `enabled`.
struct AskEveryTime<F>(F);

impl<S, F: Filter<S>> Filter<S> for AskEveryTime<F> {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.0.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let interest = self.0.callsite_enabled(meta);
        if interest.is_always() {
            Interest::sometimes()
        } else {
            interest
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    // EnvFilter tracks spans for its span-field directives: pass the span life cycle on.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, cx)
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        self.0.on_record(id, values, cx)
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        self.0.on_enter(id, cx)
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        self.0.on_exit(id, cx)
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        self.0.on_close(id, cx)
    }
}

/// The ids of one API call, kept in its span for the JSON log lines.
#[derive(Clone, Debug)]
struct ApiCallIds {
    request_id: String,
    trace_id: String,
    span_id: String,
}

/// The server span of one API call and its request id (to return to the caller).
pub struct ApiCall {
    pub span: Span,
    pub request_id: String,
}

/// A request id from the caller when it is a reasonable header value, else a new one.
fn request_id(from_caller: Option<&str>) -> String {
    match from_caller.map(str::trim) {
        Some(id)
            if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The trace id of a well-formed W3C `traceparent`.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let trace_id = traceparent.trim().split('-').nth(1)?;
    (trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        && trace_id.bytes().any(|b| b != b'0'))
    .then_some(trace_id)
}

/// Start the server span of an API call: `protocol` (`grpc`, `http`), `name` (the gRPC method
/// `syros.v1.LockService/Acquire`, or `POST /api/v1/locks`), and the caller's headers.
pub fn api_call(
    protocol: &'static str,
    name: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    caller_request_id: Option<&str>,
) -> ApiCall {
    let request_id = request_id(caller_request_id);
    let span = tracing::info_span!(
        "syros.api",
        otel.name = name,
        otel.kind = "server",
        syros.protocol = protocol,
        request_id = %request_id,
        trace_id = Empty,
        span_id = Empty,
        status = Empty,
        error.code = Empty,
        otel.status_code = Empty,
    );
    if span.is_disabled() {
        return ApiCall { span, request_id };
    }
    if let Some(traceparent) = traceparent {
        let mut headers = HashMap::with_capacity(2);
        headers.insert("traceparent".to_string(), traceparent.to_string());
        if let Some(state) = tracestate {
            headers.insert("tracestate".to_string(), state.to_string());
        }
        // Fails only when no OpenTelemetry layer is installed: nothing to link then.
        let _ = span.set_parent(TraceContextPropagator::new().extract(&headers));
    }
    let cx = span.context();
    let otel_span = cx.span();
    let ids = otel_span.span_context();
    let (trace_id, span_id) = if ids.is_valid() {
        (ids.trace_id().to_string(), ids.span_id().to_string())
    } else {
        // Traces are off: logs still correlate with the caller's trace, or with each other.
        let trace_id = traceparent
            .and_then(trace_id_of)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let span_id = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().1);
        (trace_id, span_id)
    };
    span.record("trace_id", trace_id.as_str());
    span.record("span_id", span_id.as_str());
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>() {
            if let Some(data) = registry.span(id) {
                data.extensions_mut().insert(ApiCallIds {
                    request_id: request_id.clone(),
                    trace_id,
                    span_id,
                });
            }
        }
    });
    ApiCall { span, request_id }
}

/// Record how an API call ended: `status` (a gRPC code or an HTTP status), the Syros error code
/// when it failed, and an error status on the span when the server is at fault or unavailable.
pub fn record_outcome(span: &Span, status: &str, error_code: Option<&str>, server_fault: bool) {
    // The access log line, at DEBUG (LOG_LEVEL=syros_server=debug shows it).
    tracing::debug!(parent: span, status, error_code, "call finished");
    span.record("status", status);
    if let Some(code) = error_code {
        span.record("error.code", code);
    }
    if server_fault {
        span.record("otel.status_code", "ERROR");
    }
}

/// tracing-subscriber's JSON lines with the `request_id`, `trace_id` and `span_id` of the API
/// call (if any) the event belongs to added at the top level.
struct JsonWithIds(format::Format<format::Json>);

impl<S, N> FormatEvent<S, N> for JsonWithIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx.event_scope().and_then(|mut scope| {
            scope.find_map(|span| span.extensions().get::<ApiCallIds>().cloned())
        });
        let Some(ids) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(&line) else {
            return writer.write_str(&line);
        };
        object.insert("request_id".into(), ids.request_id.into());
        object.insert("trace_id".into(), ids.trace_id.into());
        object.insert("span_id".into(), ids.span_id.into());
        let json = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{json}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_come_from_the_caller_when_sensible() {
        assert_eq!(request_id(Some("req-42")), "req-42");
        for bad in [
            None,
            Some(""),
            Some("has space"),
            Some(&"x".repeat(129)[..]),
        ] {
            let generated = request_id(bad);
            assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{bad:?}");
        }
    }

    /// The lines a fmt layer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bare_enabled_check_does_not_disable_the_next_span_or_event() {
        use tracing_log::AsTrace;
        let logs = Lines::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(AskEveryTime(EnvFilter::new("info"))),
        );
        tracing::subscriber::with_default(subscriber, || {
            for round in 0..3 {
                // What sqlx's query logger does after each statement: `log::log_enabled!` at
                // DEBUG, i.e. (through tracing-log) a bare `enabled` that the filter refuses;
                // sqlx's own event callsite is disabled, so no event consumes that decision.
                // Without `AskEveryTime` the span below is then missing from the log line.
                let query_log = log::Metadata::builder()
                    .level(log::Level::Debug)
                    .target("sqlx::query")
                    .build();
                tracing::dispatcher::get_default(|d| d.enabled(&query_log.as_trace()));
                let span = tracing::info_span!("syros.api", round);
                span.in_scope(|| tracing::info!(round, "after the check"));
            }
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        for round in 0..3 {
            assert!(
                text.contains(&format!("syros.api{{round={round}}}: syros::telemetry::tests: after the check round={round}")),
                "round {round} missing from the log:\n{text}"
            );
        }
    }

    #[test]
    fn trace_ids_are_read_from_well_formed_trace_parents() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }
}
