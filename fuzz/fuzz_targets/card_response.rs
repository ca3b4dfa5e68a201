//! A card's answers through every host-side flow: `onshi_jpki::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_jpki::fuzzing::card_responses(data);
});
