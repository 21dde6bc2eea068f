//! berthd's library: the Docker Engine API ([`api`]) over the daemon's services —
//! containers ([`containers`]: lifecycle, exit monitor and restart policies, container
//! networking and mounts), images ([`images`], [`archive`], [`registry`], [`reference`]),
//! the classic builder ([`build`]), networks ([`network`]), volumes ([`volumes`]) — and
//! their shared state ([`state`]) and event bus ([`events`]).
//!
//! What it leaves to neighbours: blobs, snapshots, unpacking, containers' specs and tasks
//! live in berth-manager, reached over gRPC ([`manager`]).

pub mod api;
pub mod archive;
pub mod build;
pub mod clock;
pub mod config;
pub mod containers;
pub mod error;
pub mod events;
pub mod images;
pub mod manager;
pub mod network;
pub mod reference;
pub mod registry;
pub mod state;
pub mod supervise;
pub mod volumes;
