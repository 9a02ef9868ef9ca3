//! The suite loader on arbitrary bytes: it may reject anything, it must never panic or
//! hang. `make fuzz` (cargo fuzz, nightly) runs it for 10 minutes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let _ = firedrill::suite::load_bytes(std::path::Path::new("fuzz.yaml"), data, &fixtures);
});
