//! Integration tests: real `cerd` processes on loopback with fresh keys,
//! driven through cerctl's library. One test binary, declared from the
//! `cerd` crate so `CARGO_BIN_EXE_cerd` is set.

mod harness;

mod automation;
mod backup;
mod fault;
mod federation;
mod foundation;
mod hostile;
mod interop;
mod keys;
mod ops;
mod playbooks;
mod relay;
mod search;
mod store;
mod taxii;
mod taxii_paging;
mod taxii_write;
mod tlp;
mod webhook;
