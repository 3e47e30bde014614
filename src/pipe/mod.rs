//! Moving ssh's bytes: ssh's stdin/stdout halves and the copy loop ([`stdio`]), `splice(2)` for
//! a TCP socket ([`splice`]), noticing ssh leave at any stage ([`lifeline`]), and a websocket link
//! with its writer task ([`websocket`]).

use std::time::Duration;

/// The one drain policy of every pump (stdio, splice, the eice tunnel, the SSM channel): after
/// ssh closed our stdin, the instance side may still send for this long before the pump ends.
/// ssh has exited by then, and the broker promises to be gone within 1 s of ssh: this, plus at
/// most 500 ms to end a Session Manager session (TerminateSession), plus the lifeline's notice.
pub(crate) const DRAIN: Duration = Duration::from_millis(400);

pub(crate) mod lifeline;
pub(crate) mod splice;
pub(crate) mod stdio;
pub(crate) mod websocket;
