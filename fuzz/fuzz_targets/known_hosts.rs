//! `cargo fuzz run known_hosts` (nightly): any file parses into lines (bad ones with reasons)
//! and matching any entry never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2_broker::fuzzing::known_hosts_line(data));
