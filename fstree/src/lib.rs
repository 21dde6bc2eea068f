//! File work on untrusted trees: image layers, container root filesystems, build contexts,
//! volumes. Every path inside such a tree is resolved with `openat2(RESOLVE_IN_ROOT)`
//! ([`open`]), so neither `..` nor a symlink planted in the tree leads outside it.
//!
//! - [`layer`]: apply a layer tar (plain, gzip, zstd) in overlay form, or extract one plainly;
//!   hostile archives are refused entry by entry.
//! - [`diff`]: walk an overlay upper directory against its lowers (changes, a layer tar of
//!   them), and tar a subtree without following links.
//! - [`mount`]: mount a snapshot on a directory for a short look.
//! - [`users`]: read `/etc/passwd` and `/etc/group` inside a root.
//! - [`atomic`]: the one atomic file write (durable, or until reboot for `/run` state).
//! - [`socket`]: a listening unix socket whose node has its mode before anyone can connect.
//!
//! `layer` and `diff` are the `layers` feature (default; berth-runtime goes without).
//!
//! Used by berth-runtime (opening in the container's root), berth-manager (unpack, diff,
//! the spec's users) and berthd (cp, volumes, the build context, archives).

pub mod atomic;
#[cfg(feature = "layers")]
pub mod diff;
#[cfg(feature = "layers")]
pub mod layer;
pub mod mount;
pub mod open;
pub mod socket;
pub mod users;

pub use atomic::{write_atomic, write_atomic_until_reboot};
pub use open::open_in_root;
pub use socket::listen_unix;
