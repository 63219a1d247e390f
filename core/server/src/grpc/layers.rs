//! Server layers that volo-grpc does not provide by default: a request size limit, a bound on
//! lock waiters per connection, and turning a handler panic into INTERNAL (instead of a
//! CANCELLED stream and a lost connection task).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use http_body_util::{BodyExt, Limited};
use volo::{Layer, Service};
use volo_grpc::body::BoxBody;
use volo_grpc::context::ServerContext;
use volo_grpc::{Request, Status};

use crate::security::grpc::is_lock_session;

/// Largest request body (all messages of one call) the server reads: 16 MiB. Bigger requests get
/// RESOURCE_EXHAUSTED before they are buffered.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Caps the bytes read from each request body.
#[derive(Clone, Copy)]
pub struct RequestLimitLayer(pub usize);

#[derive(Clone)]
pub struct RequestLimit<S> {
    inner: S,
    max: usize,
}

impl<S> Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;
    fn layer(self, inner: S) -> Self::Service {
        RequestLimit { inner, max: self.0 }
    }
}

impl<S> Service<ServerContext, Request<BoxBody>> for RequestLimit<S>
where
    S: Service<ServerContext, Request<BoxBody>, Error = Status> + Send + Sync,
{
    type Response = S::Response;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Self::Response, Self::Error> {
        let max = self.max;
        // A lock session is one long-lived body of many small frames: a cap on its total would
        // end it after so many operations, so the cap applies to each of its messages.
        if is_lock_session(cx.rpc_info.method()) {
            let (metadata, extensions, body) = req.into_parts();
            let limited = MessageLimited::new(body, max).boxed_unsync();
            return self
                .inner
                .call(cx, Request::from_parts(metadata, extensions, limited))
                .await;
        }
        let (metadata, extensions, body) = req.into_parts();
        let limited = Limited::new(body, max)
            .map_err(move |err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    Status::resource_exhausted(format!(
                        "request is larger than the server's limit of {max} bytes"
                    ))
                } else {
                    match err.downcast::<Status>() {
                        Ok(status) => *status,
                        Err(other) => Status::internal(other.to_string()),
                    }
                }
            })
            .boxed_unsync();
        self.inner
            .call(cx, Request::from_parts(metadata, extensions, limited))
            .await
    }
}

/// A gRPC request body whose every message is at most `max` bytes: it follows the 5-byte
/// message prefixes (compressed flag, big-endian length) through the data frames and fails the
/// body with RESOURCE_EXHAUSTED at the first prefix announcing more, before that message is
/// buffered. The total is not capped (a lock session's body is long-lived).
struct MessageLimited {
    inner: BoxBody,
    max: usize,
    /// The prefix of the next message, as far as it has arrived.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl MessageLimited {
    fn new(inner: BoxBody, max: usize) -> Self {
        MessageLimited {
            inner,
            max,
            prefix: [0; 5],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// Follow the message boundaries through one data frame.
    fn check(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (self.prefix.len() - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == self.prefix.len() {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                if len > self.max {
                    return Err(Status::resource_exhausted(format!(
                        "message of {len} bytes is larger than the server's limit of {} bytes",
                        self.max
                    )));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

impl http_body::Body for MessageLimited {
    type Data = <BoxBody as http_body::Body>::Data;
    type Error = Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                this.check(data)?;
            }
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The method whose calls wait for a lock.
const ACQUIRE_METHOD: &str = "/syros.v1.LockService/Acquire";

/// Bounds the `LockService/Acquire` calls in progress (each possibly a waiter) per client
/// connection: one more gets RESOURCE_EXHAUSTED at once instead of joining a queue. The
/// connection is told apart by its peer address, as volo reports it.
#[derive(Clone)]
pub struct LockWaiterLimitLayer {
    max: usize,
    in_progress: Arc<Mutex<HashMap<String, usize>>>,
}

impl LockWaiterLimitLayer {
    /// At most `max` acquisitions in progress per connection.
    pub fn new(max: usize) -> Self {
        LockWaiterLimitLayer {
            max,
            in_progress: Arc::default(),
        }
    }
}

#[derive(Clone)]
pub struct LockWaiterLimit<S> {
    inner: S,
    limit: LockWaiterLimitLayer,
}

impl<S> Layer<S> for LockWaiterLimitLayer {
    type Service = LockWaiterLimit<S>;
    fn layer(self, inner: S) -> Self::Service {
        LockWaiterLimit { inner, limit: self }
    }
}

/// The waiter limit of one connection, for the acquire frames of a lock session on it (the
/// layer puts it in the extensions of lock session calls: [`is_lock_session`]).
#[derive(Clone)]
pub struct ConnectionWaiters {
    limit: LockWaiterLimitLayer,
    connection: String,
}

impl ConnectionWaiters {
    /// Count one acquisition in progress until the slot is dropped; RESOURCE_EXHAUSTED past
    /// the limit.
    #[allow(clippy::result_large_err)]
    pub fn take(&self) -> Result<WaiterSlot, Status> {
        self.limit.take(self.connection.clone())
    }
}

/// One acquisition in progress on one connection; counted down when the call ends or is
/// cancelled.
pub struct WaiterSlot {
    connection: String,
    in_progress: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WaiterSlot {
    fn drop(&mut self) {
        let mut in_progress = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_progress.get_mut(&self.connection) {
            *count -= 1;
            if *count == 0 {
                in_progress.remove(&self.connection);
            }
        }
    }
}

impl LockWaiterLimitLayer {
    fn take(&self, connection: String) -> Result<WaiterSlot, Status> {
        let mut in_progress = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_progress.entry(connection.clone()).or_default();
        if *count >= self.max {
            return Err(Status::resource_exhausted(format!(
                "more than {} lock acquisitions in progress on this connection \
                 (GRPC_MAX_LOCK_WAITERS_PER_CONNECTION); wait for some to finish or use \
                 another connection",
                self.max
            )));
        }
        *count += 1;
        Ok(WaiterSlot {
            connection,
            in_progress: self.in_progress.clone(),
        })
    }
}

impl<S, T> Service<ServerContext, Request<T>> for LockWaiterLimit<S>
where
    S: Service<ServerContext, Request<T>, Error = Status> + Send + Sync,
    T: Send + 'static,
{
    type Response = S::Response;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<T>,
    ) -> Result<Self::Response, Self::Error> {
        let method = cx.rpc_info.method();
        if method != ACQUIRE_METHOD && !is_lock_session(method) {
            return self.inner.call(cx, req).await;
        }
        // volo puts the peer address in the `rip` metadata, or in the caller when the client
        // names its service.
        let connection = req
            .metadata()
            .get(volo_grpc::metadata::HEADER_TRANS_REMOTE_ADDR)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| cx.rpc_info.caller().address().map(|a| a.to_string()))
            .unwrap_or_default();
        if is_lock_session(method) {
            let mut req = req;
            req.extensions_mut().insert(ConnectionWaiters {
                limit: self.limit.clone(),
                connection,
            });
            return self.inner.call(cx, req).await;
        }
        let _slot = self.limit.take(connection)?;
        self.inner.call(cx, req).await
    }
}

/// Answers INTERNAL when a handler panics.
#[derive(Clone, Copy)]
pub struct CatchPanicLayer;

#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

impl<S, T> Service<ServerContext, Request<T>> for CatchPanic<S>
where
    S: Service<ServerContext, Request<T>, Error = Status> + Send + Sync,
    T: Send + 'static,
{
    type Response = S::Response;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<T>,
    ) -> Result<Self::Response, Self::Error> {
        match AssertUnwindSafe(self.inner.call(cx, req))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "request handler panicked");
                Err(Status::internal(
                    "internal error: the request handler failed",
                ))
            }
        }
    }
}

/// Runs each call in its server span ([`crate::telemetry::api_call`], the caller's
/// `traceparent` as parent), records the status and Syros error code, and returns the request
/// id in the `x-request-id` metadata of the answer (success or error).
#[derive(Clone, Copy)]
pub struct TraceLayer;

#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(self, inner: S) -> Self::Service {
        Trace { inner }
    }
}

/// gRPC codes that mean the server failed or could not serve (OpenTelemetry's semantic
/// conventions for server spans); the others are the caller's business.
pub(crate) fn server_fault(code: volo_grpc::Code) -> bool {
    use volo_grpc::Code;
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

impl<S, T, U> Service<ServerContext, Request<T>> for Trace<S>
where
    S: Service<ServerContext, Request<T>, Response = volo_grpc::Response<U>, Error = Status>
        + Send
        + Sync,
    T: Send + 'static,
{
    type Response = S::Response;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<T>,
    ) -> Result<Self::Response, Self::Error> {
        use tracing::Instrument;
        use volo_grpc::metadata::MetadataValue;

        // A lock session lives as long as its client: no call of its own, each of its frames
        // gets the span of the call it stands for (grpc/lock_session.rs).
        if is_lock_session(cx.rpc_info.method()) {
            return self.inner.call(cx, req).await;
        }

        let call = {
            let header = |name: &str| req.metadata().get(name).and_then(|v| v.to_str().ok());
            let method = cx.rpc_info.method();
            crate::telemetry::api_call(
                "grpc",
                method.strip_prefix('/').unwrap_or(method),
                header("traceparent"),
                header("tracestate"),
                header(crate::telemetry::REQUEST_ID_HEADER),
            )
        };
        let request_id: Option<MetadataValue<_>> = call.request_id.parse().ok();
        let span = call.span;
        let result = self.inner.call(cx, req).instrument(span.clone()).await;
        match result {
            Ok(mut response) => {
                crate::telemetry::record_outcome(&span, "OK", None, false);
                if let Some(id) = request_id {
                    response
                        .metadata_mut()
                        .insert(crate::telemetry::REQUEST_ID_HEADER, id);
                }
                Ok(response)
            }
            Err(mut status) => {
                let code = status.code();
                let error_code = status
                    .metadata()
                    .get(super::ERROR_CODE_HEADER)
                    .and_then(|v| v.to_str().ok());
                crate::telemetry::record_outcome(
                    &span,
                    &format!("{code:?}"),
                    error_code,
                    server_fault(code),
                );
                if let Some(id) = request_id {
                    status
                        .metadata_mut()
                        .insert(crate::telemetry::REQUEST_ID_HEADER, id);
                }
                Err(status)
            }
        }
    }
}
