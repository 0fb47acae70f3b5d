//! The pail binaries' shared code: the `pail` command line, and the JSON form of records that
//! the CLI prints and the HTTP API (local server and Lambda) will serve.
//!
//! Everything here is a thin layer over [`pail_core::Pail`]: parsing, printing and exit codes.
//! Must never: talk to the store directly or re-implement a core rule.

pub mod bench;
pub mod cli;
pub mod kafka;
pub mod render;
