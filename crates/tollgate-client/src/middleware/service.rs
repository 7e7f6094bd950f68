use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use tower::Service;

use super::error::Rejection;
use super::future::ResponseFuture;
use crate::point::DecisionPoint;
use crate::request::DecisionRequest;

/// Decides every request before the inner service sees it; see the
/// [module docs](super).
pub struct Decision<S, D, F> {
    inner: S,
    point: Arc<D>,
    build: Arc<F>,
}

impl<S, D, F> Decision<S, D, F>
where
    D: DecisionPoint,
    F: Fn(&Parts) -> Option<DecisionRequest>,
{
    /// Wraps `inner`.
    pub fn new(inner: S, point: D, build: F) -> Self {
        Decision::from_parts(inner, Arc::new(point), Arc::new(build))
    }
}

impl<S, D, F> Decision<S, D, F> {
    pub(super) fn from_parts(inner: S, point: Arc<D>, build: Arc<F>) -> Self {
        Decision {
            inner,
            point,
            build,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, D, F> Clone for Decision<S, D, F> {
    fn clone(&self) -> Self {
        Decision {
            inner: self.inner.clone(),
            point: Arc::clone(&self.point),
            build: Arc::clone(&self.build),
        }
    }
}

impl<S: fmt::Debug, D, F> fmt::Debug for Decision<S, D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, D, F, ReqBody, ResBody> Service<Request<ReqBody>> for Decision<S, D, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    D: DecisionPoint + 'static,
    F: Fn(&Parts) -> Option<DecisionRequest>,
    ReqBody: Send + 'static,
    ResBody: From<String> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let decision_request = (self.build)(&parts);
        let mut req = Request::from_parts(parts, body);
        // The service that was driven to readiness is the one to call; leave a
        // clone in its place (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let point = Arc::clone(&self.point);
        ResponseFuture::new(async move {
            let Some(decision_request) = decision_request else {
                return inner.call(req).await;
            };
            match point.enforce(&decision_request).await {
                Ok(decision) => {
                    req.extensions_mut().insert(decision);
                    inner.call(req).await
                }
                Err(e) => Ok(Rejection::from_error(&e).into_response()),
            }
        })
    }
}
