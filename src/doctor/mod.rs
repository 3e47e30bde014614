//! `ec2-broker doctor HOST`: why each route reaches an instance or not, with the evidence and
//! the fix.
//!
//! [`examine`] gathers facts (AWS calls, one attempt per route, a pushed key and one login
//! probe); [`explain`] turns facts into verdicts and advice without any I/O, so every message is
//! unit-tested; [`report`] renders the table and the JSON; [`ssh_config`] reads `ssh -G` for the
//! settings that hide the broker's errors.

pub mod examine;
pub mod explain;
pub mod report;
pub mod ssh_config;

pub use report::{Check, Report, Verdict};
