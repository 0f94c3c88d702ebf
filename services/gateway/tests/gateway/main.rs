//! The gateway against a real nats-server and real conversation, routing, ticket-sync and webhook
//! services, all in-process.

mod grpc;
mod iam;
mod live;
mod rest;
mod restart;
mod routing;
mod subscriber;
mod support;
mod tickets;
mod webhooks;
