//! The mesh: QUIC links between CERT nodes and the sync engine over them.
//!
//! Architecture invariant: this is the only module that imports quinn and
//! rustls. Every byte from a peer is decoded here and every envelope is
//! verified by `node::ingest` (via `verify` and `sign`) before the store or
//! the sync state machine acts on it.

mod engine;
pub mod transport;

pub use engine::Mesh;
pub use transport::{Endpoint, MeshError};
