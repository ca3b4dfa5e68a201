//! Command APDUs through a freshly built virtual card: `onshi_virtual_card::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_virtual_card::fuzzing::apdu_session(data);
});
