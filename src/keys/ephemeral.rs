//! Short-lived Ed25519 key pairs: one per connection, pushed with Instance Connect.
//!
//! Instance Connect's on-instance parser only offers key lines that start with `ssh`
//! (`../shared/spec/aws-apis.md` §2.1, §7 item 1), so the type is always `ssh-ed25519`.

use std::fmt;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use zeroize::Zeroizing;

/// How long a key pushed with `SendSSHPublicKey` stays valid on the instance (spec §2.1).
pub(crate) const KEY_VALIDITY_SECS: u32 = 60;

/// The comment on every key the broker makes, public and private: how a key file is known to be
/// the broker's own.
pub(crate) const KEY_COMMENT: &str = "ec2-broker";

/// An ephemeral key pair. `Debug` never shows the private half.
#[derive(Clone)]
pub(crate) struct EphemeralKey {
    private: PrivateKey,
}

/// Why a key could not be made or read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// The random generator or the encoder failed.
    #[error("could not generate an Ed25519 key: {0}")]
    Generate(String),
    /// A key file held something that is not an OpenSSH private key.
    #[error("not an OpenSSH private key: {0}")]
    Parse(String),
}

impl EphemeralKey {
    /// A fresh Ed25519 key pair from the OS random source.
    pub(crate) fn generate() -> Result<Self, KeyError> {
        let mut private =
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| KeyError::Generate(e.to_string()))?;
        private.set_comment(KEY_COMMENT);
        Ok(EphemeralKey { private })
    }

    /// Whether this is a key the broker made: Ed25519, unencrypted, with [`KEY_COMMENT`].
    pub(crate) fn is_broker_key(&self) -> bool {
        self.private.algorithm() == Algorithm::Ed25519
            && !self.private.is_encrypted()
            && self.private.comment().as_bytes() == KEY_COMMENT.as_bytes()
    }

    /// Reads back a key written by [`EphemeralKey::to_openssh_private`].
    pub(crate) fn from_openssh_private(text: &str) -> Result<Self, KeyError> {
        let private = PrivateKey::from_openssh(text).map_err(|e| KeyError::Parse(e.to_string()))?;
        Ok(EphemeralKey { private })
    }

    /// The public key as one `authorized_keys` line (`ssh-ed25519 AAAA… ec2-broker`).
    pub(crate) fn public_openssh(&self) -> String {
        let mut public = self.private.public_key().clone();
        public.set_comment(KEY_COMMENT);
        public.to_openssh().expect("encoding an in-memory Ed25519 public key cannot fail")
    }

    /// The private key in OpenSSH format, as ssh reads it from an `IdentityFile`.
    pub(crate) fn to_openssh_private(&self) -> Result<Zeroizing<String>, KeyError> {
        self.private.to_openssh(LineEnding::LF).map_err(|e| KeyError::Generate(e.to_string()))
    }

    /// `SHA256:…` fingerprint, as `ssh-keygen -l` and sshd's `%f` print it.
    pub(crate) fn fingerprint(&self) -> String {
        self.private.public_key().fingerprint(HashAlg::Sha256).to_string()
    }

    /// The key itself, for the agent client.
    pub(crate) fn private_key(&self) -> &PrivateKey {
        &self.private
    }
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EphemeralKey({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_differ_and_round_trip() {
        let a = EphemeralKey::generate().unwrap();
        let b = EphemeralKey::generate().unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        let public = a.public_openssh();
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        assert!(public.ends_with(" ec2-broker"));
        // SendSSHPublicKey accepts 80 to 4096 characters (spec §2.1).
        assert!((80..=4096).contains(&public.len()), "{}", public.len());
        let text = a.to_openssh_private().unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let back = EphemeralKey::from_openssh_private(&text).unwrap();
        assert_eq!(back.fingerprint(), a.fingerprint());
        assert!(!format!("{a:?}").contains("PRIVATE"));
        assert!(EphemeralKey::from_openssh_private("junk").is_err());
        assert!(back.is_broker_key(), "the marker survives the file");
        let mut foreign = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        foreign.set_comment("alice@laptop");
        let foreign = EphemeralKey::from_openssh_private(&foreign.to_openssh(LineEnding::LF).unwrap()).unwrap();
        assert!(!foreign.is_broker_key());
    }
}
