//! Rust types and gRPC stubs generated from the `.proto` files under `proto/`.
//!
//! The module tree mirrors the protobuf packages: `yy.eventlog.v1` is [`eventlog::v1`].
#![allow(missing_docs, clippy::all, missing_debug_implementations)]

/// The serialized `FileDescriptorSet` of every Yiwaiwai proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("yy_descriptor");

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

/// `yy.iam.v1`: tenants and API keys.
pub mod iam {
    pub mod v1 {
        tonic::include_proto!("yy.iam.v1");
    }
}

/// `yy.system.v1`: the status service every process serves.
pub mod system {
    pub mod v1 {
        tonic::include_proto!("yy.system.v1");
    }
}
