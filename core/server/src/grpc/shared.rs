//! A layer that makes the gRPC service stack cheap to clone.
//!
//! volo-grpc clones the whole inner service for every request (`MetaService::call`), and that
//! stack ends in its `Router`, whose clone copies the route tree (matchit nodes) and boxes a
//! clone of every registered service. In the per-call profile that was a fifth to a third of
//! the server's instructions (docs/performance.md). Behind an [`Arc`], a clone is one atomic
//! increment.

use std::sync::Arc;

use volo::{Layer, Service};

/// Puts the service it wraps behind an [`Arc`]; add it as the outermost inner layer.
#[derive(Clone, Copy, Default)]
pub struct SharedLayer;

/// The wrapped service, shared by every clone.
pub struct Shared<S>(Arc<S>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<S> Layer<S> for SharedLayer {
    type Service = Shared<S>;
    fn layer(self, inner: S) -> Self::Service {
        Shared(Arc::new(inner))
    }
}

impl<Cx, Req, S> Service<Cx, Req> for Shared<S>
where
    S: Service<Cx, Req> + Send + Sync,
    Cx: Send,
    Req: Send,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(&self, cx: &mut Cx, req: Req) -> Result<Self::Response, Self::Error> {
        self.0.call(cx, req).await
    }
}
