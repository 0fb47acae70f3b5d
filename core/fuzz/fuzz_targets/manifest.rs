//! Arbitrary bytes as a partition manifest and as a topic descriptor.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pail_core::fuzzing::manifest(data);
    pail_core::fuzzing::topic_descriptor(data);
});
