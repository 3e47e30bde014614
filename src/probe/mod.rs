//! Checks that touch an sshd without logging in as the user: host keys over a route
//! ([`keyscan`]) and whether a pushed key is accepted ([`auth`]).

pub(crate) mod auth;
pub(crate) mod keyscan;
