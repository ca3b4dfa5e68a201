//! A request body through every parser of the kiosk's listeners:
//! `onshi_reader_agent::kiosk::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_reader_agent::kiosk::fuzzing::kiosk_body(data);
});
