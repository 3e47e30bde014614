//! The key of one connection and how ssh gets it: a key file claimed for `IdentityFile
//! DIR/%r@%h`, or a key for the running ssh-agent.

use std::path::PathBuf;

use super::agent::{self, AgentError};
use super::file::{self, KeyFileError, KeySlot};
use super::{EphemeralKey, KeyError};

/// How the private key reaches ssh (`--key-delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDelivery {
    /// A 0600 file in a 0700 directory, named for ssh_config's `IdentityFile DIR/%r@%h`.
    File,
    /// The running ssh-agent (`SSH_AUTH_SOCK`), with a lifetime constraint; nothing on disk.
    Agent,
}

/// Why the key could not be prepared or handed over.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HolderError {
    /// No `--key-dir` and no home directory to default to.
    #[error("no home directory for the key file: pass --key-dir")]
    NoHome,
    /// The key file.
    #[error("preparing the key file")]
    File(#[from] KeyFileError),
    /// Making the key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The agent refused or is not there.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// The key for this connection and how ssh will get it.
#[derive(Debug)]
pub(crate) enum KeyHolder {
    /// A claimed key file.
    File(KeySlot),
    /// A key for the agent.
    Agent(EphemeralKey),
}

impl KeyHolder {
    /// Prepares the key for `user@host` (`host` as ssh names the key file, `%h`); a key file kept
    /// from an earlier connection is brought back when `reuse` allows its key (file delivery only:
    /// an agent key is never reused, see docs/keys.md).
    pub(crate) fn prepare(
        delivery: KeyDelivery,
        dir: Option<PathBuf>,
        user: &str,
        host: &str,
        reuse: &dyn Fn(&EphemeralKey) -> bool,
    ) -> Result<Self, HolderError> {
        Ok(match delivery {
            KeyDelivery::Agent => KeyHolder::Agent(EphemeralKey::generate()?),
            KeyDelivery::File => {
                let dir = dir.or_else(file::default_dir).ok_or(HolderError::NoHome)?;
                let slot = KeySlot::claim(&dir, user, host, reuse)?;
                if slot.origin() == file::Origin::Shared {
                    tracing::info!(path = %slot.path().display(), "reusing the key of a concurrent connection");
                }
                KeyHolder::File(slot)
            }
        })
    }

    /// The key to push.
    pub(crate) fn key(&self) -> &EphemeralKey {
        match self {
            KeyHolder::File(slot) => slot.key(),
            KeyHolder::Agent(key) => key,
        }
    }

    /// Asks that the key file be kept for the next connection (see [`KeySlot::keep_for_reuse`]);
    /// nothing for an agent key.
    pub(crate) fn keep_for_reuse(&mut self, keep: bool) {
        if let KeyHolder::File(slot) = self {
            slot.keep_for_reuse(keep);
        }
    }

    /// The key was refused, or a login that looked refused was not proven otherwise: a key file
    /// is removed now and never kept.
    pub(crate) fn discard(&mut self) {
        if let KeyHolder::File(slot) = self {
            slot.discard();
        }
    }

    /// Makes the (already pushed) key available to ssh.
    pub(crate) async fn deliver(&self) -> Result<(), HolderError> {
        match self {
            KeyHolder::File(slot) => slot.write()?,
            KeyHolder::Agent(key) => agent::add(key).await?,
        }
        Ok(())
    }
}
