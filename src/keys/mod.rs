//! Keys: the short-lived Ed25519 key each connection pushes ([`EphemeralKey`]), and the two ways
//! ssh gets it: a private file named for `IdentityFile DIR/%r@%h` ([`mod@file`]) or the running
//! ssh-agent with a lifetime ([`agent`]). Only the route layer uses these; commands never do,
//! except `key`, whose subject they are: it calls [`pair`] alone.

pub(crate) mod agent;
mod ephemeral;
pub(crate) mod file;
pub(crate) mod holder;
pub(crate) mod pair;
pub(crate) mod placement;

pub(crate) use ephemeral::*;
