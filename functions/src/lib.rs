//! The pail binaries' shared code: the `pail` command line, the HTTP API (served locally by
//! `pail serve` and on AWS Lambda by `pail-http`), event ingestion (`pail-ingest`), the
//! scheduled maintenance function (`pail-maintain`), the consumer function (`relay`: `pail
//! run-consumer` and `pail-consumer`), and the JSON form of records.
//!
//! Everything here is a thin layer over [`pail_core::Pail`]: parsing, printing and exit codes.
//! Must never: talk to the store directly or re-implement a core rule.

#[allow(unsafe_code)]
pub mod alloc;
pub mod bench;
pub mod cli;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod relay;
pub mod render;

/// Every pail binary allocates through [`alloc::Allocator`]: the system allocator, with huge
/// blocks reserved lazily so that a hostile length cannot abort the process.
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;
