//! Berth's gRPC contracts, generated from `berth/shim/v1/shim.proto`,
//! `berth/manager/v1/manager.proto` and `berth/log/v1/log.proto` by tonic at build time. Generated code only: each crate
//! converts to its own types at its edge. The `.proto` files document every field.

/// `berth.shim.v1`: manager ↔ shim.
pub mod shim {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.shim.v1");
}

/// `berth.log.v1`: the `local` log record, shim (writer) ↔ berthd (reader).
pub mod log {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.log.v1");
}

/// `berth.manager.v1`: clients ↔ manager.
pub mod manager {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("berth.manager.v1");
}
