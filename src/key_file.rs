//! Handing the private key to ssh as a file named for ssh_config's `IdentityFile DIR/%r@%h`.
//!
//! ssh loads each `IdentityFile` right after it starts the ProxyCommand: a missing file is
//! skipped then and read at authentication time (lab note 1), but a file that *exists* is
//! loaded at once, and its key is the one ssh offers later. So a key file left by another
//! broker must not be replaced under a starting ssh: while a file exists we reuse its key
//! (and push it again); only when no file exists do we make a fresh one. The last broker
//! using a file deletes it on exit, so the next connection normally gets a fresh key.
//!
//! Two lock files next to the key make this safe across processes (`flock`):
//! - `NAME.guard` (exclusive, held briefly) serialises choosing, writing and deleting;
//! - `NAME.users` (shared, held for the connection's life) counts live users.
//!
//! Files are created 0600 in a 0700 directory and written atomically (temp file + rename).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::keys::{EphemeralKey, KeyError};

/// Why the key file could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Creating, locking, reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The key directory is open to other users.
    #[error("key directory {0} is readable by other users: run chmod 700 on it")]
    UnsafeDir(PathBuf),
    /// A name that cannot be a single file name.
    #[error("cannot use {0:?} in a key file name")]
    BadName(String),
    /// The existing key file does not hold a key.
    #[error("key file {path}: {source}")]
    Key {
        /// Which file.
        path: PathBuf,
        /// The parse error.
        source: KeyError,
    },
}

/// A claimed key file: the key ssh will read, held until the connection ends.
#[derive(Debug)]
pub struct KeySlot {
    path: PathBuf,
    key: EphemeralKey,
    reused: bool,
    users: Option<File>,
}

impl KeySlot {
    /// Claims `dir/NAME` (NAME = `user@host`), reusing an existing key or generating a fresh one.
    pub fn claim(dir: &Path, user: &str, host: &str) -> Result<KeySlot, KeyFileError> {
        let name = format!("{user}@{host}");
        if name.contains('/') || name.contains('\0') || name.starts_with('.') {
            return Err(KeyFileError::BadName(name));
        }
        ensure_private_dir(dir)?;
        let path = dir.join(&name);
        let guard = lock_file(&path, "guard")?;
        lock(&guard, &path, LockKind::Exclusive)?;
        let users = lock_file(&path, "users")?;
        lock(&users, &path, LockKind::Shared)?;
        let (key, reused) = match fs::read_to_string(&path) {
            Ok(text) => (
                EphemeralKey::from_openssh_private(&text)
                    .map_err(|source| KeyFileError::Key { path: path.clone(), source })?,
                true,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (EphemeralKey::generate().map_err(|source| KeyFileError::Key { path: path.clone(), source })?, false)
            }
            Err(source) => {
                return Err(KeyFileError::Io { action: "reading", path, source });
            }
        };
        drop(guard);
        Ok(KeySlot { path, key, reused, users: Some(users) })
    }

    /// The key to push and hand to ssh.
    pub fn key(&self) -> &EphemeralKey {
        &self.key
    }

    /// Whether the key came from a file another connection left (see the module docs).
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Where ssh will read the key.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the key file (atomically, 0600). Call after the key was pushed, before piping.
    pub fn write(&self) -> Result<(), KeyFileError> {
        if self.reused {
            return Ok(());
        }
        let text =
            self.key.to_openssh_private().map_err(|source| KeyFileError::Key { path: self.path.clone(), source })?;
        let tmp = self.path.with_file_name(format!(".{}.{}.tmp", file_name(&self.path), std::process::id()));
        let io_err = |action, source| KeyFileError::Io { action, path: tmp.clone(), source };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("creating", e))?;
        f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| io_err("writing", e))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            KeyFileError::Io { action: "renaming into place", path: self.path.clone(), source: e }
        })
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        // Stop being a user, then delete the key if nobody else uses it.
        drop(self.users.take());
        let Ok(guard) = lock_file(&self.path, "guard") else {
            return;
        };
        if lock(&guard, &self.path, LockKind::Exclusive).is_err() {
            return;
        }
        let Ok(users) = lock_file(&self.path, "users") else {
            return;
        };
        if users.try_lock().is_ok() {
            let _ = fs::remove_file(&self.path);
            tracing::debug!(path = %self.path.display(), "removed key file");
        }
    }
}

#[derive(Clone, Copy)]
enum LockKind {
    Shared,
    Exclusive,
}

fn lock(file: &File, path: &Path, kind: LockKind) -> Result<(), KeyFileError> {
    match kind {
        LockKind::Shared => file.lock_shared(),
        LockKind::Exclusive => file.lock(),
    }
    .map_err(|source| KeyFileError::Io { action: "locking", path: path.to_path_buf(), source })
}

fn lock_file(key_path: &Path, suffix: &str) -> Result<File, KeyFileError> {
    let path = key_path.with_file_name(format!(".{}.{suffix}", file_name(key_path)));
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|source| KeyFileError::Io { action: "opening lock file", path, source })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn ensure_private_dir(dir: &Path) -> Result<(), KeyFileError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| KeyFileError::Io {
        action: "creating directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let meta =
        fs::metadata(dir).map_err(|source| KeyFileError::Io { action: "reading", path: dir.to_path_buf(), source })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyFileError::UnsafeDir(dir.to_path_buf()));
    }
    Ok(())
}

/// The default key directory: `~/.cache/ec2-broker/keys` (matches the README's ssh_config).
pub fn default_dir() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".cache").join("ec2-broker").join("keys"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_reused_then_removed_by_last_user() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let a = KeySlot::claim(&dir, "ec2-user", "web-1").unwrap();
        assert!(!a.reused());
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        a.write().unwrap();
        let meta = fs::metadata(a.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // A second connection while the first is alive reuses the key ssh may already have loaded.
        let b = KeySlot::claim(&dir, "ec2-user", "web-1").unwrap();
        assert!(b.reused());
        assert_eq!(b.key().fingerprint(), a.key().fingerprint());

        drop(a);
        assert!(b.path().exists(), "still in use by b");
        let path = b.path().to_path_buf();
        drop(b);
        assert!(!path.exists(), "last user removes it");

        // The next connection gets a fresh key.
        let c = KeySlot::claim(&dir, "ec2-user", "web-1").unwrap();
        assert!(!c.reused());
    }

    #[test]
    fn rejects_open_dirs_and_odd_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(KeySlot::claim(&dir, "u", "h"), Err(KeyFileError::UnsafeDir(_))));
        assert!(matches!(KeySlot::claim(tmp.path(), "u", "a/b"), Err(KeyFileError::BadName(_))));
    }
}
