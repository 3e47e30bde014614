//! The fuzz targets' entry points, in one place (`fuzz/fuzz_targets/*.rs` call only these). Each
//! is a plain function that a unit test also runs, since our toolchain is stable and CI only
//! compiles the targets. Not behind `#[cfg(fuzzing)]`: CI compiles the targets with the
//! workspace's clippy run, and a `--cfg fuzzing` there would rebuild every dependency.

pub use crate::aws::ec2_query::fuzz_answer as ec2_answer;
pub use crate::known_hosts::file::fuzz_parse as known_hosts_line;
pub use crate::serial::host_key_check::{
    OracleRun, fuzz_feed as serial_host_key, fuzz_oracle as serial_host_key_oracle,
};
pub use crate::ssm::message::fuzz_decode as ssm_message;
pub use crate::target::spec::fuzz_parse as host_spec;
