//! The mesh: QUIC links between CERT nodes and the sync engine over them.
//!
//! Architecture invariant: this is the only module that imports quinn and
//! rustls. Every byte from a peer is decoded here, and every envelope and
//! tombstone is verified (`Node::verify_items`, through `verify` and
//! `sign`) before the store acts on it.

pub mod board;
mod engine;
mod link;
pub mod transport;

pub use board::PeerBoard;
pub use engine::Mesh;
pub use transport::{Endpoint, MeshError, Socket};
