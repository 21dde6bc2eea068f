//! The Docker Engine API served by berthd, driven by the real clients: the `docker` CLI,
//! docker-py and docker-compose (and berth's own CLI). Each test runs its own stack
//! ([`berth_tests::stack::Stack`]: berth-manager, berthd, a loopback docker-registry);
//! daemon.json turns Docker Hub fallback off, so nothing leaves the machine. One module
//! per area, mirroring `daemon/src/api/`.

mod build;
mod cli;
mod commit;
mod compose;
mod containers;
mod cp;
mod crash;
mod exec;
mod fidelity;
mod hostile;
mod images;
mod limits;
mod logging;
mod networks;
mod options;
mod system;
mod tls;
