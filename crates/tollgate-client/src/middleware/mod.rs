//! Tower middleware: every request through the wrapped service is decided first.
//!
//! In tower's shape (see `tower::timeout`): [`DecisionLayer`] makes [`Decision`]
//! services; the service's [`ResponseFuture`] decides, then calls the inner service
//! only on ALLOW; a refusal is answered by the middleware itself as a `403` with the
//! JSON body of [`Rejection`] (the shape of the Decionis FastAPI middleware's, with
//! `"error": "tollgate_blocked"`). Without a verdict (server down, timeout, 5xx) the
//! client fails closed, so the answer is a `403` too.
//!
//! The request builder sees the request head and returns the decision request, or
//! `None` to let a request through ungated (a health check, say). The verdict of an
//! allowed request is put in the request's extensions as a
//! [`crate::Decision`], so handlers can log its id.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tollgate_client::{DecisionLayer, DecisionRequest, testing::FakeClient};
//!
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "ok" }))
//!     .layer(DecisionLayer::new(FakeClient::new(), |req: &http::request::Parts| {
//!         Some(
//!             DecisionRequest::new("HTTP_REQUEST")
//!                 .actor_id("api", "SERVICE")
//!                 .context_field("path", req.uri.path()),
//!         )
//!     }));
//! # let _ = app;
//! ```

mod error;
mod future;
mod layer;
mod service;

pub use error::Rejection;
pub use future::ResponseFuture;
pub use layer::DecisionLayer;
pub use service::Decision;
