//! `ec2-broker doctor HOST`: why each route reaches an instance or not, with the evidence and
//! the fix.
//!
//! [`examine`] gathers facts (AWS calls, one attempt per route, a pushed key and one login
//! probe), [`examine_agent`] the evidence of why an SSM agent is offline, and
//! [`examine_key_pair`] whether the instance holds its launch key pair's key; [`explain`] turns facts into verdicts and advice without any I/O, so every message is
//! unit-tested; [`report`] renders the table and the JSON; [`ssh_config`] reads `ssh -G` for the
//! settings that hide the broker's errors.

pub(crate) mod examine;
pub(crate) mod examine_agent;
pub(crate) mod examine_key_pair;
pub(crate) mod explain;
pub(crate) mod report;
pub(crate) mod ssh_config;
