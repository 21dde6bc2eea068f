//! berthd's library: image references with Docker's normalisation ([`reference`]), daemon.json
//! ([`config`]), an OCI distribution client ([`registry`]), and image operations on top of
//! berth-manager's content store and snapshotter ([`images`]: pull, push, import, tag,
//! remove, list, inspect, history; [`archive`]: save and load).
//!
//! What it leaves to neighbours: blobs, snapshots, unpacking and garbage collection live in
//! berth-manager (reached over gRPC, [`manager`]); the Docker Engine API comes next.

pub mod api;
pub mod archive;
pub mod config;
pub mod images;
pub mod instructions;
pub mod manager;
pub mod network;
pub mod reference;
pub mod registry;
pub mod supervise;
pub mod volumes;
