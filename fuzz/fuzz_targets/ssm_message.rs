//! `cargo fuzz run ssm_message` (nightly): decoding any frame never panics, and a decoded frame
//! re-encodes to the same message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2_broker::fuzzing::ssm_message(data));
