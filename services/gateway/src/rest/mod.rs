//! The REST API under `/v1`.

use crate::AppState;

/// `/v1/…`.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}

/// Wraps the whole HTTP API (REST, admin, live): request ids, the body limit, and problem
/// documents for unknown routes and methods.
pub fn middleware(router: axum::Router) -> axum::Router {
    router
}
