//! The public gRPC API: the conversation, routing, ticket-sync and webhook services' own APIs,
//! served here for backend services.
//!
//! Calls are authenticated with an API key in the `authorization` metadata and forwarded, bytes
//! untouched, to the service behind with the key's tenant in `x-yy-tenant`. A tenant a client
//! puts in that metadata itself is discarded. Forwarding at the HTTP/2 level keeps one definition
//! of every method and message: what a service accepts is exactly the public API, with nothing to
//! keep in step by hand.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::Channel;
use yy_proto::conversation::v1::conversation_service_server;
use yy_proto::routing::v1::routing_service_server;
use yy_proto::ticket::v1::ticket_service_server;
use yy_proto::webhook::v1::webhook_service_server;

use crate::AppState;
use crate::upstream::TENANT_METADATA;

/// The channels to the services behind the gateway.
pub struct Upstreams {
    pub conversation: Channel,
    pub routing: Channel,
    pub webhook: Channel,
    pub ticket_sync: Channel,
}

/// The gRPC routes the gateway serves besides health, reflection and status.
pub fn routes(state: AppState, upstreams: Upstreams) -> tonic::service::Routes {
    tonic::service::Routes::default()
        .add_service(Proxy::<Conversation>::new(state.clone(), upstreams.conversation))
        .add_service(Proxy::<Routing>::new(state.clone(), upstreams.routing))
        .add_service(Proxy::<Webhook>::new(state.clone(), upstreams.webhook))
        .add_service(Proxy::<TicketSync>::new(state, upstreams.ticket_sync))
}

/// A service served by forwarding: its gRPC name, and how errors name it.
trait Upstream: Send + Sync + 'static {
    const SERVICE: &'static str;
    const LABEL: &'static str;
}

struct Conversation;

impl Upstream for Conversation {
    const SERVICE: &'static str = conversation_service_server::SERVICE_NAME;
    const LABEL: &'static str = "the conversation service";
}

struct Routing;

impl Upstream for Routing {
    const SERVICE: &'static str = routing_service_server::SERVICE_NAME;
    const LABEL: &'static str = "the routing service";
}

struct Webhook;

impl Upstream for Webhook {
    const SERVICE: &'static str = webhook_service_server::SERVICE_NAME;
    const LABEL: &'static str = "the webhook service";
}

struct TicketSync;

impl Upstream for TicketSync {
    const SERVICE: &'static str = ticket_service_server::SERVICE_NAME;
    const LABEL: &'static str = "the ticket-sync service";
}

/// Forwards every call to `U`'s methods to `upstream`.
struct Proxy<U> {
    state: AppState,
    upstream: Channel,
    // `fn() -> U` keeps the proxy `Send + Sync` whatever `U` is; it only names the service.
    service: PhantomData<fn() -> U>,
}

impl<U> Proxy<U> {
    fn new(state: AppState, upstream: Channel) -> Self {
        Proxy {
            state,
            upstream,
            service: PhantomData,
        }
    }
}

// Derived `Clone` would require `U: Clone` for a marker that is never cloned.
impl<U> Clone for Proxy<U> {
    fn clone(&self) -> Self {
        Proxy::new(self.state.clone(), self.upstream.clone())
    }
}

impl<U: Upstream> NamedService for Proxy<U> {
    const NAME: &'static str = U::SERVICE;
}

impl<U: Upstream> Service<Request<Body>> for Proxy<U> {
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
            let unavailable = || tonic::Status::unavailable(format!("{} is unavailable", U::LABEL)).into_http();
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
                tracing::warn!(%error, service = U::SERVICE, "upstream unavailable");
                return Ok(unavailable());
            }
            match upstream.call(request).await {
                Ok(response) => Ok(response.map(Body::new)),
                Err(error) => {
                    tracing::warn!(%error, service = U::SERVICE, "forwarding a gRPC call failed");
                    Ok(unavailable())
                }
            }
        })
    }
}
