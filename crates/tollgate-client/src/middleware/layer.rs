use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use tower::Layer;

use super::service::Decision;
use crate::point::DecisionPoint;
use crate::request::DecisionRequest;

/// Applies [`Decision`] to services: every request is decided before it runs.
pub struct DecisionLayer<D, F> {
    point: Arc<D>,
    build: Arc<F>,
}

impl<D, F> DecisionLayer<D, F>
where
    D: DecisionPoint,
    F: Fn(&Parts) -> Option<DecisionRequest>,
{
    /// A layer deciding with `point`; `build` turns a request head into the decision
    /// request (`None`: not gated).
    pub fn new(point: D, build: F) -> Self {
        DecisionLayer {
            point: Arc::new(point),
            build: Arc::new(build),
        }
    }
}

impl<D, F> Clone for DecisionLayer<D, F> {
    fn clone(&self) -> Self {
        DecisionLayer {
            point: Arc::clone(&self.point),
            build: Arc::clone(&self.build),
        }
    }
}

impl<D, F> fmt::Debug for DecisionLayer<D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionLayer").finish_non_exhaustive()
    }
}

impl<S, D, F> Layer<S> for DecisionLayer<D, F> {
    type Service = Decision<S, D, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Decision::from_parts(inner, Arc::clone(&self.point), Arc::clone(&self.build))
    }
}
