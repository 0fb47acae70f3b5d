//! The pail binaries' shared code: the `pail` command line, the HTTP API (served locally by
//! `pail serve` and on AWS Lambda by `pail-http`), event ingestion (`pail-ingest`), the
//! scheduled maintenance function (`pail-maintain`), the consumer function (`relay`: `pail
//! run-consumer` and `pail-consumer`), and the JSON form of records.
//!
//! Everything here is a thin layer over [`pail_core::Pail`]: parsing, printing and exit codes.
//! Must never: talk to the store directly or re-implement a core rule.

pub mod bench;
pub mod cli;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod relay;
pub mod render;

/// Every pail binary allocates through mimalloc. Two reasons, both measured: the kafka-protocol
/// decoder sizes a vector from a request's untrusted array length before reading its elements,
/// and with the system allocator a length of 2^31 asks for 64 GiB at once and aborts the whole
/// listener (an abort, not a panic: nothing can catch it); mimalloc reserves such a block
/// lazily (`MAP_NORESERVE`), the decoder fails on the bytes that are not there and the block is
/// returned untouched (`tests/tests/kafka.rs::hostile_array_lengths_do_not_abort_the_listener`).
/// And it keeps freed large blocks for reuse, where the system allocator returned them to the
/// kernel and paid page faults to get them back on every fetch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
