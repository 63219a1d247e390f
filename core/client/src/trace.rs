//! W3C trace context on every call (docs/tracing.md), so a caller's trace and the server's work
//! for the call form one trace.
//!
//! Each call runs in a `syros.client` span (named `syros.client <op>` in OpenTelemetry). The
//! `traceparent` / `tracestate` metadata sent with an attempt comes from, in order:
//!
//! 1. the current `tracing` span's OpenTelemetry context, when the application installed a
//!    `tracing-opentelemetry` layer (the `syros.client` span itself, then a child of the
//!    application's span);
//! 2. a context handed in explicitly with [`scope`] (how bindings pass their host's context:
//!    the host has its own OpenTelemetry SDK, and the Rust spans are not exported there).
//!
//! Without either, nothing is sent.

use std::future::Future;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use volo_grpc::metadata::{MetadataMap, MetadataValue};

/// The W3C metadata key of the trace parent (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";
/// The W3C metadata key of vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// A W3C trace context as it travels in headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`: `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.
    pub traceparent: String,
    /// `tracestate`, when there is any.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A context from header values; `None` when `traceparent` is not a well-formed version-00
    /// W3C trace parent with non-zero ids (such a header would be ignored by the server anyway).
    pub fn new(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let parts: Vec<&str> = traceparent.trim().split('-').collect();
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let non_zero = |s: &str| s.bytes().any(|b| b != b'0');
        match parts.as_slice() {
            [version, trace, span, flags]
                if *version == "00"
                    && hex(trace, 32)
                    && hex(span, 16)
                    && hex(flags, 2)
                    && non_zero(trace)
                    && non_zero(span) => {}
            _ => return None,
        }
        Some(TraceContext {
            traceparent: traceparent.trim().to_string(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }
}

tokio::task_local! {
    static CALLER_CONTEXT: TraceContext;
}

/// Run `future` (calls of this client core) with `context` as their parent trace context when
/// no OpenTelemetry span of the application's own is current. For bindings whose host traces
/// with its own SDK. Tasks the future spawns do not inherit it.
pub async fn scope<F: Future>(context: Option<TraceContext>, future: F) -> F::Output {
    match context {
        Some(context) => CALLER_CONTEXT.scope(context, future).await,
        None => future.await,
    }
}

/// The trace context a call made now would send.
pub fn current() -> Option<TraceContext> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        let state = span_context.trace_state().header();
        return Some(TraceContext {
            traceparent: format!(
                "00-{}-{}-{:02x}",
                span_context.trace_id(),
                span_context.span_id(),
                span_context.trace_flags().to_u8()
            ),
            tracestate: (!state.is_empty()).then_some(state),
        });
    }
    CALLER_CONTEXT.try_with(Clone::clone).ok()
}

/// Add the current trace context (if any) to a request's metadata.
pub(crate) fn inject(metadata: &mut MetadataMap) {
    let Some(context) = current() else { return };
    if let Ok(value) = context.traceparent.parse::<MetadataValue<_>>() {
        metadata.insert(TRACEPARENT, value);
    }
    if let Some(state) = context.tracestate {
        if let Ok(value) = state.parse::<MetadataValue<_>>() {
            metadata.insert(TRACESTATE, value);
        }
    }
}

/// The span of one logical call (all its attempts). Costs a callsite check when no subscriber
/// wants it.
pub(crate) fn call_span(op: &'static str) -> tracing::Span {
    tracing::info_span!(
        "syros.client",
        otel.name = format!("syros.client {op}"),
        otel.kind = "client",
        rpc.system = "grpc",
        syros.op = op,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_trace_parents_are_accepted() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::new(good, Some(" ")).expect("a valid traceparent");
        assert_eq!(context.traceparent, good);
        assert_eq!(context.tracestate, None);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceContext::new(bad, None), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_explicit_context_is_sent_within_its_scope_only() {
        let context = TraceContext::new(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=1"),
        );
        let inside = scope(context.clone(), async {
            let mut metadata = MetadataMap::new();
            inject(&mut metadata);
            metadata
        })
        .await;
        assert_eq!(
            inside.get(TRACEPARENT).and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            inside.get(TRACESTATE).and_then(|v| v.to_str().ok()),
            Some("vendor=1")
        );
        let mut outside = MetadataMap::new();
        inject(&mut outside);
        assert!(outside.get(TRACEPARENT).is_none());
    }

    #[test]
    fn the_call_span_of_an_application_trace_is_sent_as_parent() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")));
        tracing::subscriber::with_default(subscriber, || {
            let app = tracing::info_span!("app.checkout");
            let app_context = app.context().span().span_context().clone();
            assert!(app_context.is_valid());
            let call = app.in_scope(|| call_span("locks.acquire"));
            let sent = call.in_scope(current).expect("a context to send");
            let call_context = call.context().span().span_context().clone();
            // The call's own span is the parent the server sees, in the application's trace.
            assert_eq!(
                sent.traceparent,
                format!(
                    "00-{}-{}-01",
                    app_context.trace_id(),
                    call_context.span_id()
                )
            );
            assert_ne!(call_context.span_id(), app_context.span_id());
        });
    }
}
