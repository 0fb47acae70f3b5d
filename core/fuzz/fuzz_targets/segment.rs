//! Arbitrary bytes as a segment object: footer, manifest and every row.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pail_core::fuzzing::segment(data));
