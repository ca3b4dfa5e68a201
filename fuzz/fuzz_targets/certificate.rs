//! Certificate validation (cold and cached) against the corpus CAs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_confirm_service::fuzzing::certificate(data);
});
