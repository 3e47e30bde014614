//! Handing the private key to ssh as a file named for ssh_config's `IdentityFile DIR/%r@%h`.
//!
//! ssh loads each `IdentityFile` right after it starts the ProxyCommand: a missing file is
//! skipped then and read at authentication time (lab note 1), but a file that *exists* is
//! loaded at once, and its key is the one ssh offers later. So a key file left by another
//! broker must not be replaced under a starting ssh: while a file exists we reuse its key
//! (pushing it again unless the push record says it is still valid, see
//! [`crate::cache::pushes`]); only when no file exists do we make a fresh one, or bring back a
//! kept one.
//!
//! When the last broker using a file ends, the file leaves the name ssh reads:
//! - if the connection asked to keep it ([`KeySlot::keep_for_reuse`]: its key was pushed with
//!   Instance Connect moments ago and nothing looked refused), it is renamed to `.NAME.kept`,
//!   a name no ssh reads. The next connection brings it back to `NAME` only when the caller's
//!   `reuse` test says so (same account, instance, user and route, pushed at most
//!   `pushes::REUSE_SECS` ago); otherwise the kept file is deleted and a fresh key made. So a
//!   kept key is never on ssh's path once it may have expired: it cannot be loaded by a
//!   starting ssh unless a broker decided it is still valid.
//! - otherwise it is deleted, and the next connection gets a fresh key.
//!
//! A refused login removes the file at once ([`KeySlot::discard`]) and it is not kept.
//!
//! Only a file that is provably the broker's is reused: a regular file (opened `O_NOFOLLOW`) of
//! the current user, mode 0600, holding an Ed25519 key with the broker's comment
//! ([`keys::KEY_COMMENT`]). Anything else was planted or damaged: it is never pushed, and is
//! replaced with a fresh key (a warning names it and why). A file at `NAME` no live connection
//! uses (its broker was killed) is reused only while younger than the pushed key's validity
//! ([`keys::KEY_VALIDITY_SECS`]), else replaced.
//!
//! Two lock files next to the key make this safe across processes (`flock`):
//! - `.NAME.guard` (exclusive, held briefly) serialises choosing, writing, keeping and deleting;
//! - `.NAME.users` (shared, held for the connection's life) counts live users.
//!
//! Everything happens through [`PrivateDir`]: a 0700 directory of the user's, files created with
//! random temporary names, `O_EXCL|O_NOFOLLOW`, 0600, synced and renamed into place.

use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::private_file::{DirPolicy, Existing, PrivateDir, PrivateFileError, current_uid};
use crate::keys::{self, EphemeralKey, KeyError};

/// A key file larger than this is not one the broker wrote (an Ed25519 key file is ~400 bytes).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Why the key file could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    /// The key directory, a lock file or the key file cannot be used safely, or a system call failed.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// Locking failed.
    #[error("locking {path}")]
    Lock {
        /// Which lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A name that cannot be a single file name.
    #[error("cannot use {0:?} in a key file name")]
    BadName(String),
    /// The key could not be made or encoded.
    #[error("key file {path}")]
    Key {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
}

/// A claimed key file: the key ssh will read, held until the connection ends.
#[derive(Debug)]
pub(crate) struct KeySlot {
    dir: PrivateDir,
    name: String,
    path: PathBuf,
    key: EphemeralKey,
    origin: Origin,
    keep: bool,
    users: Option<File>,
}

/// Where a claimed key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Made for this connection.
    Fresh,
    /// The file of a live connection, or one a killed broker left at `NAME`.
    Shared,
    /// A kept file brought back because the caller's `reuse` test allowed it.
    Kept,
}

impl KeySlot {
    /// Claims `dir/NAME` (NAME = `user@host`), reusing an existing key of the broker's, or a kept
    /// one when `reuse` allows its key (see the module docs), or generating a fresh one.
    pub(crate) fn claim(
        dir: &Path,
        user: &str,
        host: &str,
        reuse: &dyn Fn(&EphemeralKey) -> bool,
    ) -> Result<KeySlot, KeyFileError> {
        KeySlot::claim_at(dir, user, host, SystemTime::now(), reuse)
    }

    /// [`KeySlot::claim`] at `now` (which decides whether a left-over file is too old to reuse).
    pub(crate) fn claim_at(
        dir: &Path,
        user: &str,
        host: &str,
        now: SystemTime,
        reuse: &dyn Fn(&EphemeralKey) -> bool,
    ) -> Result<KeySlot, KeyFileError> {
        let name = format!("{user}@{host}");
        if name.contains('/') || name.contains('\0') || name.starts_with('.') {
            return Err(KeyFileError::BadName(name));
        }
        let dir = PrivateDir::create(dir, DirPolicy::OwnerOnly)?;
        let path = dir.join(&name);
        let guard = dir.open_lock(&lock_name(&name, "guard"))?;
        lock(&guard, &dir.join(&lock_name(&name, "guard")), LockKind::Exclusive)?;
        let users_path = dir.join(&lock_name(&name, "users"));
        let users = dir.open_lock(&lock_name(&name, "users"))?;
        let in_use = match users.try_lock() {
            Ok(()) => {
                users.unlock().map_err(|source| KeyFileError::Lock { path: users_path.clone(), source })?;
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(source)) => return Err(KeyFileError::Lock { path: users_path, source }),
        };
        lock(&users, &users_path, LockKind::Shared)?;
        let reusable = match dir.open_existing(&name)? {
            None => kept(&dir, &name, reuse)?.map(|key| (key, Origin::Kept)),
            Some(found) => match judge(found, in_use, now) {
                Verdict::Reuse(key) => Some((*key, Origin::Shared)),
                Verdict::Replace { why, planted } => {
                    match planted {
                        true => tracing::warn!(
                            "key file {} was not created by ec2-broker ({why}): replaced with a fresh key",
                            path.display()
                        ),
                        false => tracing::info!("key file {} {why}: replaced with a fresh key", path.display()),
                    }
                    dir.remove(&name)?;
                    None
                }
            },
        };
        let (key, origin) = match reusable {
            Some(found) => found,
            None => (
                EphemeralKey::generate().map_err(|source| KeyFileError::Key { path: path.clone(), source })?,
                Origin::Fresh,
            ),
        };
        drop(guard);
        Ok(KeySlot { dir, name, path, key, origin, keep: false, users: Some(users) })
    }

    /// The key to push and hand to ssh.
    pub(crate) fn key(&self) -> &EphemeralKey {
        &self.key
    }

    /// Whether the key came from a file another connection left (see the module docs).
    pub(crate) fn reused(&self) -> bool {
        self.origin != Origin::Fresh
    }

    /// Where the key came from.
    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether the last user should keep the file (renamed out of ssh's way) for the next
    /// connection to reuse, rather than delete it.
    pub(crate) fn keep_for_reuse(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// The key was refused (or its login looked refused and the check did not settle it): removes
    /// the file now, so no ssh that starts later loads it, and never keeps it.
    pub(crate) fn discard(&mut self) {
        self.keep = false;
        let Ok(guard) = self.dir.open_lock(&lock_name(&self.name, "guard")) else { return };
        if guard.lock().is_ok() && self.dir.remove(&self.name).is_ok() {
            tracing::info!(path = %self.path.display(), "removed the key file of a login that looked refused");
        }
    }

    /// Where ssh will read the key.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the key file (atomically, 0600). Call after the key was pushed, before piping.
    pub(crate) fn write(&self) -> Result<(), KeyFileError> {
        if self.reused() {
            return Ok(());
        }
        let text =
            self.key.to_openssh_private().map_err(|source| KeyFileError::Key { path: self.path.clone(), source })?;
        Ok(self.dir.write_atomic(&self.name, text.as_bytes())?)
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        // Stop being a user, then delete the key if nobody else uses it.
        drop(self.users.take());
        let Ok(guard) = self.dir.open_lock(&lock_name(&self.name, "guard")) else {
            return;
        };
        if guard.lock().is_err() {
            return;
        }
        let Ok(users) = self.dir.open_lock(&lock_name(&self.name, "users")) else {
            return;
        };
        if users.try_lock().is_err() {
            return;
        }
        if self.keep {
            match self.dir.rename(&self.name, &lock_name(&self.name, "kept")) {
                Ok(()) => tracing::debug!(path = %self.path.display(), "kept the key file for reuse"),
                Err(e) => {
                    tracing::debug!(error = %e, "could not keep the key file");
                    let _ = self.dir.remove(&self.name);
                }
            }
        } else if self.dir.remove(&self.name).is_ok() {
            tracing::debug!(path = %self.path.display(), "removed key file");
        }
    }
}

/// The kept key of `NAME` (`.NAME.kept`) when it is the broker's and `reuse` allows it, moved back
/// to `NAME`; otherwise the kept file is deleted. Called with the guard held.
fn kept(
    dir: &PrivateDir,
    name: &str,
    reuse: &dyn Fn(&EphemeralKey) -> bool,
) -> Result<Option<EphemeralKey>, KeyFileError> {
    let kept = lock_name(name, "kept");
    let Some(found) = dir.open_existing(&kept)? else { return Ok(None) };
    let key = match own_key(found) {
        Ok(key) if reuse(&key) => key,
        Ok(_) => {
            tracing::debug!("the kept key may no longer be reused: a fresh key");
            dir.remove(&kept)?;
            return Ok(None);
        }
        Err((why, _)) => {
            tracing::warn!(
                "kept key file {} was not created by ec2-broker ({why}): removed",
                dir.join(&kept).display()
            );
            dir.remove(&kept)?;
            return Ok(None);
        }
    };
    dir.rename(&kept, name)?;
    Ok(Some(key))
}

/// What to do with a key file found in place.
enum Verdict {
    /// The broker's own, and safe to hand to ssh again.
    Reuse(Box<EphemeralKey>),
    /// Not to be used: `why`, and whether it looks planted (warn) or is only old (info).
    Replace { why: String, planted: bool },
}

/// Decides about an existing key file: reuse only the broker's own key (see the module docs).
fn judge(found: Existing, in_use: bool, now: SystemTime) -> Verdict {
    let modified = match &found {
        Existing::File { meta, .. } => meta.modified().ok(),
        Existing::Other(_) => None,
    };
    let key = match own_key(found) {
        Ok(key) => key,
        Err((why, planted)) => return Verdict::Replace { why, planted },
    };
    if in_use {
        return Verdict::Reuse(Box::new(key));
    }
    let validity = Duration::from_secs(keys::KEY_VALIDITY_SECS.into());
    match modified.and_then(|m| now.duration_since(m).ok()) {
        Some(age) if age < validity => {
            tracing::info!(
                "key file left by an ended connection {} s ago, within the pushed key's {} s validity: reusing it",
                age.as_secs(),
                validity.as_secs()
            );
            Verdict::Reuse(Box::new(key))
        }
        Some(age) => Verdict::Replace {
            why: format!(
                "was left by an ended connection {} s ago, longer than the pushed key's {} s validity",
                age.as_secs(),
                validity.as_secs()
            ),
            planted: false,
        },
        None => Verdict::Replace { why: "has a modification time in the future".into(), planted: false },
    }
}

/// The key in a file, if the file is provably the broker's; else why not (always "planted").
fn own_key(found: Existing) -> Result<EphemeralKey, (String, bool)> {
    let planted = |why: String| Err((why, true));
    let (mut file, meta) = match found {
        Existing::Other(what) => return planted(what.to_string()),
        Existing::File { file, meta } => (file, meta),
    };
    if meta.uid() != current_uid() {
        return planted(format!("owner uid {}", meta.uid()));
    }
    if meta.mode() & 0o7777 != 0o600 {
        return planted(format!("mode {:04o}", meta.mode() & 0o7777));
    }
    let mut text = String::new();
    let key = match file.by_ref().take(MAX_KEY_FILE + 1).read_to_string(&mut text) {
        Ok(n) if n as u64 <= MAX_KEY_FILE => EphemeralKey::from_openssh_private(&text).ok(),
        _ => None,
    };
    key.filter(EphemeralKey::is_broker_key).ok_or_else(|| ("not an ec2-broker key".to_string(), true))
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
    .map_err(|source| KeyFileError::Lock { path: path.to_path_buf(), source })
}

fn lock_name(name: &str, suffix: &str) -> String {
    format!(".{name}.{suffix}")
}

/// A key file that no running connection uses, found by [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOver {
    /// Where it is.
    pub path: PathBuf,
    /// How long ago it was written, if its time is readable.
    pub age: Option<Duration>,
    /// What the next connection will do with it: `None` reuse it, `Some(why)` replace it.
    pub replaced_because: Option<String>,
}

/// Looks, without changing anything, for a key file `dir/USER@HOST` that no running connection
/// uses (its broker was killed): what `doctor` reports. `None` when there is none, or it is in use.
pub(crate) fn inspect(dir: &Path, user: &str, host: &str, now: SystemTime) -> Option<LeftOver> {
    let name = format!("{user}@{host}");
    let dir = PrivateDir::open(dir, DirPolicy::OwnerOnly).ok()??;
    let found = dir.open_existing(&name).ok()??;
    // Only look at a lock that exists: opening it would create it.
    let users_name = lock_name(&name, "users");
    let in_use = match dir.open_existing(&users_name).ok().flatten() {
        // A live connection holds it shared: an exclusive lock cannot be had (and is let go at once).
        Some(Existing::File { file, .. }) => file.try_lock().is_err(),
        _ => false,
    };
    if in_use {
        return None;
    }
    let age = match &found {
        Existing::File { meta, .. } => meta.modified().ok().and_then(|m| now.duration_since(m).ok()),
        Existing::Other(_) => None,
    };
    let replaced_because = match judge(found, false, now) {
        Verdict::Reuse(_) => None,
        Verdict::Replace { why, planted: true } => Some(format!("it was not created by ec2-broker: {why}")),
        Verdict::Replace { why, planted: false } => Some(format!("it {why}")),
    };
    Some(LeftOver { path: dir.join(&name), age, replaced_because })
}

/// The default key directory: `~/.cache/ec2-broker/keys` (matches the ssh_config of docs/setup.md).
pub(crate) fn default_dir() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".cache").join("ec2-broker").join("keys"))
}

#[cfg(test)]
mod tests;
