//! A request file of the reception computer's `req/` folder through the agent's reader:
//! `onshi_reader_agent::oqs::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = onshi_reader_agent::oqs::fuzzing::request_file(data);
});
