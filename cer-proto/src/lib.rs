//! The shared vocabulary of `cerd` and `cerctl`.
//!
//! This crate owns the data model (incidents, indicators, labels), the
//! envelope format that authors sign, the local API's request and response
//! types, the mesh wire frames and the sync state machine.
//!
//! Architecture invariant: this crate performs no I/O and reads no clock.
//! It depends on no async runtime, no storage engine, no network stack and
//! no OpenPGP implementation, so clients can link it without the daemon.

pub mod api;
pub mod envelope;
pub mod error;
pub mod id;
pub mod incident;
pub mod model;
pub mod sync;
pub mod text;
pub mod wire;

pub use error::{FieldError, FieldErrors};
pub use id::{EnvelopeId, Fingerprint};
