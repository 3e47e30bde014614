//! The one integration-test binary: real ssh, scp, rsync and sshd against the lab's doubles.
#![allow(unreachable_pub)]

mod harness;

/// The CLI surface and the example ssh_config in contrib/.
mod cli;
/// Issue 18: the lab's doubles answer as AWS documents (SDK-shaped requests, one module per API family).
mod conformance;
/// Issue 19, `cp`: ranges over several ssh connections, resume, checksums.
mod copy;
/// MFA roles: the code asked on the terminal, AssumeRole, the credentials cache, `login`.
mod credentials;
/// Credentials as users have them (issue 20): IAM Identity Center profiles, an expired sign-in, credential_process, web identity.
mod credentials_sso;
/// The docs cannot rot: every command in README.md and docs/*.md runs against the lab.
mod docs;
/// doctor: the exact report for each kind of instance, IAM denials, ssh settings.
mod doctor;
/// Issue 19: the broker's own EC2 client: TLS and its trust, retry limits, final errors.
mod ec2_client;
/// Faults: throttled, failing and unreachable APIs, instances without Instance Connect.
mod faults;
/// Issue 17: EC2 key pairs, `key import` into Regions and `key new`.
mod key_pairs;
/// Issue 17: the key placed with SSM Run Command when Instance Connect's push is refused.
mod key_placement;
/// Issue 19, bursts: a key pushed moments ago reused for the same instance, user and route.
mod key_reuse;
/// Issue 17: `key install`, `key revoke` and `key rotate` (a new key proven before the old one goes).
mod key_rotation;
/// known-hosts audit: matching against ssh-keygen -F, findings as JSON.
mod known_hosts;
/// ssh leaving at any stage: a slow lookup, a resuming session (SIGKILL, no SIGHUP).
mod lifetime;
/// The same resolution and push against moto's server, an independent double.
mod moto;
/// Issue 20, progress and output: `--json` documents against docs/output.md, progress bars, table width.
mod output;
/// --route auto: the one route that works, falling through a route that fails after opening.
mod proxy_auto;
/// The direct route end to end: login, scp, rsync, key expiry, stdout purity, exit.
mod proxy_direct;
/// The eice route end to end: presigned websocket, refusals, duration cap, exit.
mod proxy_eice;
/// The ssm route end to end: ssh, scp, rsync through the SSM double, with dropped websockets and bad frames.
mod proxy_ssm;
/// Resolution and error messages: ambiguity, stopped, unknown, bad input.
mod resolution;
/// Secrets in error answers and logs, at every verbosity; the ws:// data channel refused.
mod secrets;
/// The serial console: `console` through a pseudo-terminal, and plain ssh over `--route serial`.
mod serial_console;
// `ec2-broker shell`: terminal, commands, KMS, resume (issue 16).
mod shell;
/// The user's world (issue 20): ssh-config into an Include file, ls across Regions, completions, man.
mod user_world;
