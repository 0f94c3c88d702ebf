//! Rust types and gRPC stubs generated from the `.proto` files under `proto/`.
//!
//! The module tree mirrors the protobuf packages: `yy.eventlog.v1` is [`eventlog::v1`].
#![allow(missing_docs, clippy::all, missing_debug_implementations)]

/// The serialized `FileDescriptorSet` of every Yiwaiwai proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("yy_descriptor");

/// gRPC metadata keys that are part of the API contract (see `conversation.proto`).
pub mod metadata {
    /// Carries the caller's tenant from the gateway to the services behind it. The gateway sets
    /// it after authenticating and discards any value a client sends.
    pub const TENANT: &str = "x-yy-tenant";
    /// Names the kind of an error beside its gRPC code with a stable slug (such as
    /// `message-too-large`), the same slug as the REST problem document's `type`.
    pub const ERROR_KIND: &str = "yy-error";
}

/// `yy.eventlog.v1`: the envelope, commit and snapshot formats of the event log.
pub mod eventlog {
    pub mod v1 {
        tonic::include_proto!("yy.eventlog.v1");
    }
}

/// `yy.conversation.v1`: conversation and contact events, and the conversation API.
pub mod conversation {
    pub mod v1 {
        tonic::include_proto!("yy.conversation.v1");
    }
}

/// `yy.routing.v1`: routing events, and the routing API (rules, agents, queues, agent workspace).
pub mod routing {
    pub mod v1 {
        tonic::include_proto!("yy.routing.v1");
    }
}

/// `yy.iam.v1`: tenants and API keys.
pub mod iam {
    pub mod v1 {
        tonic::include_proto!("yy.iam.v1");
    }
}

/// `yy.webhook.v1`: webhook endpoint, message and delivery events, and the webhook API.
pub mod webhook {
    pub mod v1 {
        tonic::include_proto!("yy.webhook.v1");
    }
}

/// `yy.ticket.v1`: ticket and connector events, and the ticket API.
pub mod ticket {
    pub mod v1 {
        tonic::include_proto!("yy.ticket.v1");
    }
}

/// `yy.kb.v1`: knowledge-base entry events, and the knowledge-base API (entries, import, search).
pub mod kb {
    pub mod v1 {
        tonic::include_proto!("yy.kb.v1");
    }
}

/// `yy.system.v1`: the status service every process serves.
pub mod system {
    pub mod v1 {
        tonic::include_proto!("yy.system.v1");
    }
}
