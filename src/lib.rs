//! ec2-broker: make plain `ssh`, `scp` and `rsync` reach EC2 instances.
//!
//! ```text
//!  ssh ──stdin/stdout──▶ pipe ──▶ route ──▶ TCP to the instance (direct)
//!                          │        ├─────▶ ssm::driver ⇄ ssm::Session ⇄ websocket ⇄ MGS ⇄ agent ⇄ sshd (ssm)
//!                          │        └─────▶ EICE websocket tunnel ⇄ sshd (eice) | serial endpoint (serial)
//!                          ▲
//!   cmd::proxy: target::spec ─▶ aws::find_instances ─▶ target::resolve ─▶ Instance
//!                          └ keys ─▶ aws::push_key (Instance Connect) ─▶ keys::file | keys::agent ─▶ ssh
//! ```
//!
//! - [`target`]: what the user typed, our instance type, and the choice of one instance (pure);
//! - [`aws`] is the only module that sees AWS SDK types;
//! - [`keys`]: the short-lived key and how ssh gets it;
//! - [`route`] opens a byte stream; [`pipe`] moves it to and from ssh and notices ssh leaving;
//!   [`probe`] checks an sshd without logging in (host keys, a refused key);
//! - [`ssm`] is the Session Manager data channel: a sans-IO state machine and its tokio driver;
//!   [`tls`] holds the trust roots for the websockets the broker opens (`AWS_CA_BUNDLE`);
//! - [`known_hosts`] reads known_hosts files, matches hosts like ssh, reads the host keys EC2
//!   consoles print, and turns both into audit findings;
//! - [`serial`] is the serial console: endpoints and pinned host keys, escapes, the russh client;
//!   [`terminal`] puts the local terminal in raw mode and restores it;
//! - [`aws::credentials`] assumes MFA roles (`mfa_serial`) with a code asked on `/dev/tty`;
//!   [`cache`] keeps lookups and writes every private file safely;
//! - [`copy`] is `cp`: ranges of a file over several ssh connections, checked and resumable;
//! - [`inventory`] is what `ls` lists (route verdicts from API facts, the versioned JSON);
//!   [`ssh_config_gen`] the Host blocks and the marked section `ssh-config --write` keeps;
//! - [`cmd`] holds one file per subcommand; [`error`] turns errors into words; [`output`] prints
//!   reports; [`doctor`] explains why a host cannot be reached;
//! - [`redact`] keeps secrets out of messages and logs; [`text`] makes untrusted text safe for a
//!   terminal.
#![forbid(unsafe_code)]
// Items are pub(crate) by default: the crate's docs are for contributors, and link freely.
#![allow(rustdoc::private_intra_doc_links)]
#![warn(missing_docs)]

pub(crate) mod aws;
pub(crate) mod cache;
pub mod cli;
pub mod cmd;
pub mod config;
pub(crate) mod copy;
pub(crate) mod doctor;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod inventory;
pub(crate) mod keys;
pub mod known_hosts;
pub mod logging;
pub(crate) mod output;
pub(crate) mod pipe;
pub(crate) mod probe;
pub(crate) mod redact;
pub(crate) mod route;
pub(crate) mod serial;
pub(crate) mod ssh_config_gen;
pub(crate) mod ssm;
pub(crate) mod target;
pub(crate) mod terminal;
pub(crate) mod text;
pub(crate) mod tls;
