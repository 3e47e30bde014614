//! `cargo fuzz run ec2_answer` (nightly): reading any EC2 answer never panics, an error read from
//! it has a real code, and an instance's Name from it holds no control character.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2_broker::fuzzing::ec2_answer(data));
