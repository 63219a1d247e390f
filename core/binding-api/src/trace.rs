//! The host's trace context for the calls it starts (docs/tracing.md): a host whose own
//! OpenTelemetry SDK traces the caller (Python's `opentelemetry`, Node's, Java's...) wraps a
//! binding-API call in [`with_trace_context`] with its current W3C `traceparent`/`tracestate`;
//! every task the call spawns (through [`crate::rt::spawn`]) sends that context to the server,
//! so the host's client span and the server's spans form one trace.

use std::cell::RefCell;

use syros_client::trace::TraceContext;

thread_local! {
    static HOST_CONTEXT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

/// Run `start` (which starts binding-API calls on this thread) with the host's trace context.
/// A malformed `traceparent` is ignored (the calls then carry no context). Nests: the previous
/// context is restored afterwards, also when `start` panics.
pub fn with_trace_context<R>(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    start: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<TraceContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOST_CONTEXT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let context = traceparent.and_then(|parent| TraceContext::new(parent, tracestate));
    let _restore = Restore(HOST_CONTEXT.with(|c| c.replace(context)));
    start()
}

/// The context calls started now on this thread carry.
pub(crate) fn host_context() -> Option<TraceContext> {
    HOST_CONTEXT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_context_holds_within_the_call_only_and_nests() {
        assert_eq!(host_context(), None);
        with_trace_context(Some(PARENT), Some("k=v"), || {
            let outer = host_context().expect("set");
            assert_eq!(outer.traceparent, PARENT);
            assert_eq!(outer.tracestate.as_deref(), Some("k=v"));
            with_trace_context(Some("not a traceparent"), None, || {
                assert_eq!(host_context(), None)
            });
            assert_eq!(host_context(), Some(outer));
        });
        assert_eq!(host_context(), None);
    }
}
