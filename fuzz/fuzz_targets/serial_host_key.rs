//! `cargo fuzz run serial_host_key` (nightly): the host-key check of `proxy --route serial` reads
//! whatever an endpoint sends; any bytes, in any chunking, give a verdict and never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ec2_broker::serial::host_key_check::fuzz_feed(data));
