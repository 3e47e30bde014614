//! `ec2-broker key new`: a long-lived Ed25519 key for EC2 key pairs, written to `~/.ssh/NAME`
//! (0600) and `~/.ssh/NAME.pub` (0644), each created `O_CREAT|O_EXCL|O_NOFOLLOW` so nothing is
//! ever overwritten or written through a planted link, in a directory of the user's that others
//! cannot write to (checked through [`PrivateDir`] as the broker's own key files are).
//!
//! No passphrase: the key is meant for `ssh-agent` (`--agent`) or an `IdentityFile`; a user who
//! wants one runs `ssh-keygen -p -f ~/.ssh/NAME` afterwards.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

use crate::cache::private_file::{DirPolicy, PrivateDir, PrivateFileError};
use crate::keys::agent::AgentError;

/// File names ssh itself uses in `~/.ssh`, never taken (`id_*` are its default identities).
const RESERVED: &[&str] = &["config", "known_hosts", "authorized_keys", "authorized_keys2", "environment", "rc"];
/// Longest name: EC2's `KeyName` limit, since the name becomes the key pair's.
const MAX_NAME: usize = 255;

/// A key written by [`write()`].
#[derive(Debug)]
pub(crate) struct NewKey {
    /// The private key file.
    pub(crate) private_path: PathBuf,
    /// The public key file (`.pub`).
    pub(crate) public_path: PathBuf,
    /// `SHA256:…`.
    pub(crate) fingerprint: String,
    key: PrivateKey,
}

/// Why no key was written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NewKeyError {
    /// A name that is not a plain file name, or one ssh uses itself.
    #[error(
        "cannot name a key {0:?}: use letters, digits, '.', '_', '-' and '@' (not starting with '.' or '-', not id_* or another file ssh uses)"
    )]
    BadName(String),
    /// The private or public file exists.
    #[error("{0} exists: ec2-broker never overwrites a key; choose another NAME")]
    Exists(PathBuf),
    /// The directory cannot be used safely.
    #[error(transparent)]
    Dir(#[from] PrivateFileError),
    /// Writing failed.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The key could not be generated or encoded.
    #[error("could not make an Ed25519 key: {0}")]
    Generate(String),
}

/// Adds the new key to the running ssh-agent (`SSH_AUTH_SOCK`), without a lifetime.
pub(crate) async fn add_to_agent(key: &NewKey) -> Result<(), AgentError> {
    crate::keys::agent::add_lasting(&key.key).await
}

/// Whether `name` may be a key file in `~/.ssh` and a key pair name.
pub(crate) fn valid_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    (1..=MAX_NAME - ".pub".len()).contains(&name.len())
        && name.chars().all(allowed)
        && !name.starts_with(['.', '-'])
        && !name.starts_with("id_")
        && !name.ends_with(".pub")
        && !RESERVED.iter().any(|r| name.starts_with(r))
}

/// Makes an Ed25519 key commented `NAME@ec2-broker` and writes `dir/NAME` and `dir/NAME.pub`.
/// [`write`] under `name`, or without one under `ec2-broker-DATE` (`today`: `YYYY-MM-DD`), then
/// `-2`, `-3`, … while those exist.
pub(crate) fn write_named_or_default(dir: &Path, name: Option<&str>, today: &str) -> Result<NewKey, NewKeyError> {
    if let Some(name) = name {
        return write(dir, name);
    }
    let base = format!("ec2-broker-{today}");
    let mut last = None;
    for name in std::iter::once(base.clone()).chain((2..=DEFAULT_NAME_TRIES).map(|n| format!("{base}-{n}"))) {
        match write(dir, &name) {
            Err(e @ NewKeyError::Exists(_)) => last = Some(e),
            other => return other,
        }
    }
    Err(last.expect("at least one name was tried"))
}

/// How many default names are tried before giving up.
const DEFAULT_NAME_TRIES: u32 = 99;

pub(crate) fn write(dir: &Path, name: &str) -> Result<NewKey, NewKeyError> {
    if !valid_name(name) {
        return Err(NewKeyError::BadName(name.to_string()));
    }
    // ~/.ssh is often 0755: others may read it (ssh allows that), never write.
    let dir = PrivateDir::create(dir, DirPolicy::NoOtherWriters)?;
    let public_name = format!("{name}.pub");
    for n in [name, public_name.as_str()] {
        if dir.open_existing(n)?.is_some() {
            return Err(NewKeyError::Exists(dir.join(n)));
        }
    }
    let mut key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| NewKeyError::Generate(e.to_string()))?;
    key.set_comment(format!("{name}@ec2-broker"));
    let private_text = key.to_openssh(LineEnding::LF).map_err(|e| NewKeyError::Generate(e.to_string()))?;
    let public_text = key.public_key().to_openssh().map_err(|e| NewKeyError::Generate(e.to_string()))? + "\n";
    create(&dir, name, 0o600, private_text.as_bytes())?;
    if let Err(e) = create(&dir, &public_name, 0o644, public_text.as_bytes()) {
        let _ = dir.remove(name);
        return Err(e);
    }
    Ok(NewKey {
        private_path: dir.join(name),
        public_path: dir.join(&public_name),
        fingerprint: key.public_key().fingerprint(HashAlg::Sha256).to_string(),
        key,
    })
}

/// Creates `name` (which must not exist) with exactly `mode` (the umask cannot widen or narrow
/// it), writes `bytes` and syncs; a half-written file is removed.
fn create(dir: &PrivateDir, name: &str, mode: u32, bytes: &[u8]) -> Result<(), NewKeyError> {
    let path = dir.join(name);
    let mut file = match dir.create_new(name, mode) {
        Ok(f) => f,
        Err(rustix::io::Errno::EXIST) => return Err(NewKeyError::Exists(path)),
        Err(e) => return Err(NewKeyError::Write { path, source: e.into() }),
    };
    let written = (file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    written.map_err(|source| {
        let _ = dir.remove(name);
        NewKeyError::Write { path, source }
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn names_are_plain_and_never_ssh_own() {
        for ok in ["ec2-broker-2026-12-06", "work", "alice@laptop", "a.b_c"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "id_ed25519", "id_rsa", "../x", "a/b", ".hidden", "-x", "config", "known_hosts", "x.pub", "a b"]
        {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn keys_are_written_once_with_their_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join(".ssh");
        let key = write(&ssh, "k1").unwrap();
        assert_eq!(std::fs::metadata(&key.private_path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&key.public_path).unwrap().mode() & 0o777, 0o644);
        let public = std::fs::read_to_string(&key.public_path).unwrap();
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" k1@ec2-broker\n"), "{public}");
        let before = std::fs::read(&key.private_path).unwrap();
        assert!(matches!(write(&ssh, "k1"), Err(NewKeyError::Exists(_))));
        assert_eq!(std::fs::read(&key.private_path).unwrap(), before, "never overwritten");
        std::fs::write(ssh.join("k2.pub"), "mine").unwrap();
        assert!(matches!(write(&ssh, "k2"), Err(NewKeyError::Exists(_))));
        assert!(!ssh.join("k2").exists(), "nothing half-made");
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(write(&ssh, "k3"), Err(NewKeyError::Dir(_))));
    }
}
