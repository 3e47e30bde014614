//! What the user typed and the instance it means: the host spec ([`spec`]), our own instance
//! type ([`instance`]) and the choice of one instance among the matches ([`resolve`], pure).

pub(crate) mod instance;
pub(crate) mod resolve;
pub(crate) mod spec;
