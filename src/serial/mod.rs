//! The EC2 serial console (`../shared/spec/aws-apis.md` §5): the last resort when the instance's
//! network or sshd is broken.
//!
//! ```text
//!  preflight (state, account setting, type) ─▶ push key (opens the session) ─▶ client: SSH to
//!  the Region's endpoint, host key pinned ─▶ driver: keyboard ⇄ escapes (crate::terminal::escape) ⇄ serial line ⇄ screen
//! ```
//!
//! Sans-IO parts, unit-tested with vectors: [`endpoints`] (the published table), [`capable`]
//! (which types have a console), [`login_hint`] and
//! [`host_key_check`] (the endpoint's key inside a relayed stream, for `proxy --route serial`).
//! I/O: [`preflight`] (AWS calls), [`client`] (russh) and [`driver`] (the loop).

pub(crate) mod capable;
pub(crate) mod client;
pub(crate) mod driver;
pub(crate) mod endpoints;
pub(crate) mod host_key_check;
pub(crate) mod login_hint;
pub(crate) mod preflight;
