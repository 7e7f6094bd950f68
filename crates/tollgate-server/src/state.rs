//! What every handler holds: the decision service (and through it the
//! configuration). Cheap to clone.

use std::sync::Arc;

use tollgate_store::Store;

use crate::config::Config;
use crate::service::DecisionService;

/// The router's state: the decision service plus its configuration.
#[derive(Clone, Debug)]
pub struct AppState {
    service: Arc<DecisionService>,
}

impl AppState {
    /// Wraps a service.
    pub fn new(service: DecisionService) -> Self {
        AppState {
            service: Arc::new(service),
        }
    }

    /// The decision service.
    pub fn service(&self) -> &DecisionService {
        &self.service
    }

    /// The decision service, shared (for work moved to a blocking thread).
    pub fn service_arc(&self) -> &Arc<DecisionService> {
        &self.service
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.service.config()
    }

    /// The store (for tests and tools that inspect it).
    pub fn store(&self) -> &Arc<dyn Store> {
        self.service.store()
    }

    /// Now, in Unix milliseconds, by the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.service.now_ms()
    }
}
