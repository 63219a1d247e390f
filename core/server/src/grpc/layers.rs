//! Server layers that volo-grpc does not provide by default: a request size limit and turning a
//! handler panic into INTERNAL (instead of a CANCELLED stream and a lost connection task).

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use http_body_util::{BodyExt, Limited};
use volo::{Layer, Service};
use volo_grpc::body::BoxBody;
use volo_grpc::context::ServerContext;
use volo_grpc::{Request, Status};

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
