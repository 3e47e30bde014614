//! known_hosts: reading the user's files, matching hosts, and the host keys EC2 instances print
//! to their console at first boot (`../shared/spec/aws-apis.md` §6).
//!
//! All sans-IO and unit-tested: [`mod@file`] parses (every OpenSSH syntax, bad lines with reasons),
//! [`pattern`] matches names as ssh does (hashed names included), [`console`] finds the host-key
//! block in console output, [`findings`] turns entries and facts into findings, [`fix`] rewrites a
//! file without the stale ones, [`exposure`] tells which key pairs hold a user's key, and
//! [`console_cache`] remembers what consoles showed between audits.

pub mod console;
pub(crate) mod console_cache;
pub mod exposure;
pub mod file;
pub mod findings;
pub mod fix;
pub mod pattern;
