//! ec2-broker: make plain `ssh`, `scp` and `rsync` reach EC2 instances.
//!
//! ```text
//!  ssh ──stdin/stdout──▶ stdio ──▶ route ──▶ TCP to the instance (direct)
//!                          │         └─────▶ ssm::driver ⇄ ssm::Session ⇄ websocket ⇄ MGS ⇄ agent ⇄ sshd (ssm)
//!                          ▲
//!   cmd::proxy: HostSpec ──┤ aws::find_instances ─▶ resolve::pick ─▶ Instance
//!                          └ keys ─▶ aws::push_key (Instance Connect) ─▶ key_file | key_agent ─▶ ssh
//! ```
//!
//! - [`host`] parses what the user typed; [`resolve`] picks one instance (pure);
//! - [`aws`] is the only module that sees AWS SDK types;
//! - [`keys`], [`key_file`], [`key_agent`]: the short-lived key and how ssh gets it;
//! - [`route`] opens a byte stream; [`stdio`] pipes it to ssh ([`splice`] for the direct route's
//!   TCP socket on Linux); [`auth_probe`] tells a refused key from other endings;
//! - [`ssm`] is the Session Manager data channel: a sans-IO state machine and its tokio driver;
//!   [`tls`] holds the trust roots for the websockets the broker opens (`AWS_CA_BUNDLE`);
//! - [`known_hosts`] reads known_hosts files, matches hosts like ssh, reads the host keys EC2
//!   consoles print, and turns both into audit findings; [`keyscan`] fetches host keys over a route;
//! - [`serial`] is the serial console: endpoints and pinned host keys, escapes, the russh client;
//!   [`terminal`] puts the local terminal in raw mode and restores it;
//! - [`credentials`] assumes MFA roles (`mfa_serial`) with a code asked on `/dev/tty` and cached
//!   in [`private_file`]s, which aws-config cannot do;
//! - [`lifeline`] notices ssh leaving at any stage (closed pipes, a new parent, signals);
//! - [`inventory`] is what `ls` lists (route verdicts from API facts, the versioned JSON);
//!   [`ssh_config_gen`] the Host blocks and the marked section `ssh-config --write` keeps in a
//!   [`user_file`] (atomic, owner-preserving);
//! - [`cmd`] holds one file per subcommand; [`error`] turns errors into words.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth_probe;
pub mod aws;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod host;
pub mod instance;
pub mod inventory;
pub mod key_agent;
pub mod key_file;
pub mod keys;
pub mod keyscan;
pub mod known_hosts;
pub mod lifeline;
pub mod logging;
pub mod lookup_cache;
pub mod output;
pub mod private_file;
pub mod resolve;
pub mod route;
pub mod serial;
pub mod splice;
pub mod ssh_config_gen;
pub mod ssm;
pub mod stdio;
pub mod terminal;
pub mod tls;
pub mod user_file;
