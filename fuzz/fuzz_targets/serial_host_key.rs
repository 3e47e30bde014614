//! `cargo fuzz run serial_host_key` (nightly): the host-key check of `proxy --route serial`.
//!
//! Two properties: any bytes, in any chunking, from either side give a verdict and never a panic
//! (`fuzz_feed`); and, with the input choosing a key exchange (method lists, decoy packets that
//! often carry the published key, the interleaving of the two directions), the check says
//! `Verified` only when the packet ssh takes as the reply carries the published key
//! (`fuzz_oracle`, which panics otherwise; `cargo test` runs it over generated inputs too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ec2_broker::fuzzing::serial_host_key(data);
    ec2_broker::fuzzing::serial_host_key_oracle(data);
});
