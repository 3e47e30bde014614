//! Routes: ways to get a byte stream to an instance's SSH port.
//!
//! [`open::open`] and [`open::open_first`] are the one way to open any route (the only dispatch
//! on [`Route`]); [`connect`] adds the short-lived key (pushed while the route opens, handed to
//! ssh once it is open) and pipes ssh's bytes. Failures are [`error::RouteError`]s.

pub(crate) mod connect;
pub(crate) mod direct;
pub(crate) mod eice;
pub(crate) mod error;
pub(crate) mod key_reuse;
pub(crate) mod memory;
pub(crate) mod open;
pub(crate) mod place;
pub(crate) mod plan;
pub(crate) mod rotate;
pub(crate) mod run_as;
pub(crate) mod serial;
pub(crate) mod ssm;

use std::fmt;

/// A way to reach an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// TCP to the instance's address.
    Direct,
    /// A Session Manager port session.
    Ssm,
    /// An EC2 Instance Connect Endpoint tunnel.
    Eice,
    /// The serial console's SSH endpoint (for the user's own ssh).
    Serial,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Direct => "direct",
            Route::Ssm => "ssm",
            Route::Eice => "eice",
            Route::Serial => "serial",
        })
    }
}
