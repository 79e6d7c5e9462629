//! The peer board: what `cerctl peers` shows about each peer. The mesh
//! engine is its only writer; the API reads it.

use std::sync::{Arc, RwLock};

use cer_proto::api::{PeerInfo, PeerList};

#[derive(Debug, Default, Clone)]
pub struct PeerBoard(Arc<RwLock<Vec<PeerInfo>>>);

impl PeerBoard {
    /// Replaces the board (the engine, after each change).
    pub fn set(&self, peers: Vec<PeerInfo>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    pub fn list(&self) -> PeerList {
        PeerList {
            peers: self.0.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    pub fn connected(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.connected)
            .count()
    }
}
