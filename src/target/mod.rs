//! What the user typed ([`spec`]), our own view of an instance ([`instance`]), and the choice of
//! the one instance a spec means ([`resolve`]). Pure.

pub mod instance;
pub mod resolve;
pub mod spec;
