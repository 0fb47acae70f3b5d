//! Arbitrary bytes as a segment object: footer, manifest and every row.
//!
//! libFuzzer aborts on any panic. pail contains panics of the Parquet decoder (the parquet
//! crate has some on hostile input) and reports them as corruption, so this target only aborts
//! on panics outside that containment. Set PAIL_FUZZ_STRICT=1 to abort on those too.
#![no_main]

use std::sync::Once;

fn init() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        if std::env::var_os("PAIL_FUZZ_STRICT").is_some() {
            return;
        }
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !pail_core::segment::panic_is_contained() {
                abort(info);
            }
        }));
    });
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    init();
    let _ = pail_core::fuzzing::segment(data);
});
