//! `cargo fuzz run host_spec` (nightly): HostSpec::parse never panics on any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2_broker::fuzzing::host_spec(data));
