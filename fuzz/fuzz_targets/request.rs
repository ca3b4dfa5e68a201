//! ConfirmByCardRequest decoding, the handler's input checks, then validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_confirm_service::fuzzing::request(data);
});
