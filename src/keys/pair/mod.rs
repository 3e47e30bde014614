//! Long-lived keys for EC2 key pairs (issue 17): reading and checking a public key to import
//! ([`public_key`]), importing it into several Regions ([`import`]), and making a new Ed25519
//! key in `~/.ssh` ([`new`]), and choosing among the keys an instance's `authorized_keys` holds
//! ([`authorized`]). The `key` command calls these and nothing else of `keys`.

pub(crate) mod authorized;
pub(crate) mod import;
pub(crate) mod new;
pub(crate) mod public_key;
