//! The gateway against a real nats-server and a real conversation service, both in-process.

mod grpc;
mod iam;
mod live;
mod rest;
mod restart;
mod support;
