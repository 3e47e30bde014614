//! Moving ssh's bytes: ssh's stdin/stdout halves and the copy loop ([`stdio`]), `splice(2)` for
//! a TCP socket ([`splice`]), and noticing ssh leave at any stage ([`lifeline`]).

pub mod lifeline;
pub mod splice;
pub mod stdio;
