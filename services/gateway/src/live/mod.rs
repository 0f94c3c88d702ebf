//! Live events: Server-Sent Events and WebSocket.

use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The live event routes; streams end when `shutdown` is cancelled.
pub fn routes(_shutdown: CancellationToken) -> axum::Router<AppState> {
    axum::Router::new()
}

/// The OpenAPI description of the live event routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::default()
}
