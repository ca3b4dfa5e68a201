//! CRL parsing and signature verification at load time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_confirm_service::fuzzing::crl(data);
});
