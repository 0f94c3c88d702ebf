//! The public gRPC API: the conversation service's own API, served here for backend services.
//!
//! Calls are authenticated with an API key in the `authorization` metadata and forwarded, bytes
//! untouched, to the conversation service with the key's tenant in `x-yy-tenant`. A tenant a
//! client puts in that metadata itself is discarded. Forwarding at the HTTP/2 level keeps one
//! definition of every method and message: what the conversation service accepts is exactly the
//! public API, with nothing to keep in step by hand.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::Channel;

use crate::AppState;
use crate::upstream::TENANT_METADATA;

/// The gRPC routes the gateway serves besides health, reflection and status.
pub fn routes(state: AppState, conversation: Channel) -> tonic::service::Routes {
    tonic::service::Routes::default().add_service(ConversationProxy {
        state,
        upstream: conversation,
    })
}

#[derive(Clone)]
struct ConversationProxy {
    state: AppState,
    upstream: Channel,
}

impl NamedService for ConversationProxy {
    const NAME: &'static str = "yy.conversation.v1.ConversationService";
}

impl Service<Request<Body>> for ConversationProxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The channel buffers and reconnects on its own; readiness is awaited per call below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let principal = crate::iam::bearer(request.headers()).and_then(|key| self.state.iam.authenticate(key));
        let mut upstream = self.upstream.clone();
        Box::pin(async move {
            let Some(principal) = principal else {
                return Ok(
                    tonic::Status::unauthenticated("a valid API key is required: `authorization: Bearer yy_…`")
                        .into_http(),
                );
            };
            let headers = request.headers_mut();
            headers.remove(axum::http::header::AUTHORIZATION);
            headers.remove(TENANT_METADATA);
            match HeaderValue::from_str(&principal.tenant_id) {
                Ok(value) => {
                    headers.insert(TENANT_METADATA, value);
                }
                Err(_) => return Ok(tonic::Status::internal("invalid tenant").into_http()),
            }
            if let Err(error) = std::future::poll_fn(|cx| upstream.poll_ready(cx)).await {
                tracing::warn!(%error, "conversation service unavailable");
                return Ok(tonic::Status::unavailable("the conversation service is unavailable").into_http());
            }
            match upstream.call(request).await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(error) => {
                    tracing::warn!(%error, "forwarding a gRPC call failed");
                    Ok(tonic::Status::unavailable("the conversation service is unavailable").into_http())
                }
            }
        })
    }
}
