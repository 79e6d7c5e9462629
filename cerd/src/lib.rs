//! The cerd daemon as a library, so tests and benchmarks run nodes
//! in-process through the same code as the binary.
//!
//! Module ownership (see ARCHITECTURE.md): only `store` imports sled, only
//! `sign` imports sequoia, only `api` and `taxii` serve HTTP.

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod key;
pub mod local;
pub mod maintain;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod playbook;
pub mod rotate;
pub mod service;
pub mod sign;
pub mod store;
pub mod taxii;
pub mod trust;
pub mod verify;
pub mod warninglist;
pub mod watch;

pub use config::Config;
pub use daemon::Daemon;
pub use node::Node;
