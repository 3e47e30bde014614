//! Routes: ways to get a byte stream to an instance's SSH port.
//!
//! Each route's `connect` returns a stream only once it is really open, so a caller can try
//! another route before any byte of ssh's stdin has been read.

pub mod auto;
pub mod direct;
pub mod eice;
pub mod memory;
pub mod plan;
pub mod serial;
pub mod ssm;

use std::fmt;

/// A way to reach an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
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
