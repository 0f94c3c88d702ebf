//! The gateway against a real nats-server and a real conversation service, both in-process.

mod support;
