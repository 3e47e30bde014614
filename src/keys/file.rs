//! Handing the private key to ssh as a file named for ssh_config's `IdentityFile DIR/%r@%h`.
//!
//! ssh loads each `IdentityFile` right after it starts the ProxyCommand: a missing file is
//! skipped then and read at authentication time (lab note 1), but a file that *exists* is
//! loaded at once, and its key is the one ssh offers later. So a key file left by another
//! broker must not be replaced under a starting ssh: while a file exists we reuse its key
//! (and push it again); only when no file exists do we make a fresh one. The last broker
//! using a file deletes it on exit, so the next connection normally gets a fresh key.
//!
//! Only a file that is provably the broker's is reused: a regular file (opened `O_NOFOLLOW`) of
//! the current user, mode 0600, holding an Ed25519 key with the broker's comment
//! ([`keys::KEY_COMMENT`]). Anything else was planted or damaged: it is never pushed, and is
//! replaced with a fresh key (a warning names it and why). A file no live connection uses (its
//! broker was killed) is reused only while younger than the pushed key's validity
//! ([`keys::KEY_VALIDITY_SECS`]), else replaced.
//!
//! Two lock files next to the key make this safe across processes (`flock`):
//! - `.NAME.guard` (exclusive, held briefly) serialises choosing, writing and deleting;
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
    reused: bool,
    users: Option<File>,
}

impl KeySlot {
    /// Claims `dir/NAME` (NAME = `user@host`), reusing an existing key of the broker's (see the
    /// module docs) or generating a fresh one.
    pub(crate) fn claim(dir: &Path, user: &str, host: &str) -> Result<KeySlot, KeyFileError> {
        KeySlot::claim_at(dir, user, host, SystemTime::now())
    }

    /// [`KeySlot::claim`] at `now` (which decides whether a left-over file is too old to reuse).
    pub(crate) fn claim_at(dir: &Path, user: &str, host: &str, now: SystemTime) -> Result<KeySlot, KeyFileError> {
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
            None => None,
            Some(found) => match judge(found, in_use, now) {
                Verdict::Reuse(key) => Some(*key),
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
        let (key, reused) = match reusable {
            Some(key) => (key, true),
            None => {
                (EphemeralKey::generate().map_err(|source| KeyFileError::Key { path: path.clone(), source })?, false)
            }
        };
        drop(guard);
        Ok(KeySlot { dir, name, path, key, reused, users: Some(users) })
    }

    /// The key to push and hand to ssh.
    pub(crate) fn key(&self) -> &EphemeralKey {
        &self.key
    }

    /// Whether the key came from a file another connection left (see the module docs).
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// Where ssh will read the key.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the key file (atomically, 0600). Call after the key was pushed, before piping.
    pub(crate) fn write(&self) -> Result<(), KeyFileError> {
        if self.reused {
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
        if users.try_lock().is_ok() && self.dir.remove(&self.name).is_ok() {
            tracing::debug!(path = %self.path.display(), "removed key file");
        }
    }
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
    let planted = |why: String| Verdict::Replace { why, planted: true };
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
    let Some(key) = key.filter(EphemeralKey::is_broker_key) else {
        return planted("not an ec2-broker key".into());
    };
    if in_use {
        return Verdict::Reuse(Box::new(key));
    }
    let validity = Duration::from_secs(keys::KEY_VALIDITY_SECS.into());
    match meta.modified().ok().and_then(|m| now.duration_since(m).ok()) {
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

/// The default key directory: `~/.cache/ec2-broker/keys` (matches the README's ssh_config).
pub(crate) fn default_dir() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".cache").join("ec2-broker").join("keys"))
}

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{PermissionsExt, symlink};

    use russh::keys::ssh_key::LineEnding;
    use russh::keys::{Algorithm, PrivateKey};

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A key file at `dir/u@h` as a broker would leave it, `age` ago; returns its fingerprint.
    fn leave_key(dir: &Path, age: Duration) -> String {
        let key = EphemeralKey::generate().unwrap();
        let path = dir.join("u@h");
        fs::write(&path, key.to_openssh_private().unwrap().as_bytes()).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - age).unwrap();
        key.fingerprint()
    }

    fn private_dir(tmp: &tempfile::TempDir) -> PathBuf {
        let dir = tmp.path().join("keys");
        PrivateDir::create(&dir, DirPolicy::OwnerOnly).unwrap();
        dir
    }

    #[test]
    fn fresh_then_reused_then_removed_by_last_user() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let a = KeySlot::claim(&dir, "ec2-user", "web-1").unwrap();
        assert!(!a.reused());
        assert_eq!(mode(&dir), 0o700);
        a.write().unwrap();
        assert_eq!(mode(a.path()), 0o600);

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
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "no temporary file left: {names:?}");
    }

    #[test]
    fn rejects_open_dirs_and_odd_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let e = KeySlot::claim(&dir, "u", "h").unwrap_err();
        assert!(matches!(e, KeyFileError::File(PrivateFileError::OpenDir { .. })), "{e:?}");
        assert!(e.to_string().contains("run chmod 700"), "{e}");
        assert!(matches!(KeySlot::claim(tmp.path(), "u", "a/b"), Err(KeyFileError::BadName(_))));
    }

    /// See: issue 14. The old code only looked at the mode of the key directory.
    #[test]
    fn issue_14_a_key_directory_of_another_user_is_refused() {
        if current_uid() != 0 {
            return; // chown needs root; the tests run as root
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = private_dir(&tmp);
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let e = KeySlot::claim(&dir, "u", "h").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "directory {} belongs to uid 65534, not to you (uid 0): use a directory of your own",
                dir.display()
            )
        );
    }

    /// See: issue 14. The old code reused any key file it found and pushed its key to AWS.
    #[test]
    fn issue_14_planted_key_files_are_not_pushed_and_are_replaced() {
        let foreign = {
            let mut k = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
            k.set_comment("mallory");
            k.to_openssh(LineEnding::LF).unwrap().to_string()
        };
        let ours = || EphemeralKey::generate().unwrap().to_openssh_private().unwrap().to_string();
        // (what is planted, its mode, its owner)
        let cases: [(&str, String, u32, Option<u32>); 4] = [
            ("mode 0644", ours(), 0o644, None),
            ("owner uid 65534", ours(), 0o600, Some(65534)),
            ("not an ec2-broker key", foreign.clone(), 0o600, None),
            ("not an ec2-broker key", "not a key at all\n".into(), 0o600, None),
        ];
        for (why, text, file_mode, owner) in cases {
            if owner.is_some() && current_uid() != 0 {
                continue;
            }
            let tmp = tempfile::tempdir().unwrap();
            let dir = private_dir(&tmp);
            let path = dir.join("u@h");
            fs::write(&path, &text).unwrap();
            fs::set_permissions(&path, Permissions::from_mode(file_mode)).unwrap();
            if let Some(uid) = owner {
                std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
            }
            let planted = EphemeralKey::from_openssh_private(&text).ok().map(|k| k.fingerprint());
            let slot = KeySlot::claim(&dir, "u", "h").unwrap();
            assert!(!slot.reused(), "{why}: reused");
            assert_ne!(Some(slot.key().fingerprint()), planted, "{why}: the planted key would be pushed");
            assert!(!path.exists(), "{why}: the planted file is removed before ssh can load it");
            slot.write().unwrap();
            let written = EphemeralKey::from_openssh_private(&fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(written.fingerprint(), slot.key().fingerprint(), "{why}");
            assert_eq!(mode(&path), 0o600);
        }
    }

    /// See: issue 14. A symlink at the key path (or at a lock file) is never followed.
    #[test]
    fn issue_14_symlinks_at_the_key_or_lock_path_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = private_dir(&tmp);
        let victim = tmp.path().join("victim");
        let victim_key = EphemeralKey::generate().unwrap();
        fs::write(&victim, victim_key.to_openssh_private().unwrap().as_bytes()).unwrap();
        fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();
        let before = fs::read(&victim).unwrap();
        symlink(&victim, dir.join("u@h")).unwrap();
        let slot = KeySlot::claim(&dir, "u", "h").unwrap();
        assert!(!slot.reused());
        assert_ne!(slot.key().fingerprint(), victim_key.fingerprint());
        slot.write().unwrap();
        drop(slot);
        assert_eq!(fs::read(&victim).unwrap(), before, "the link's target is untouched");

        symlink(&victim, dir.join(".v@h.guard")).unwrap();
        let e = KeySlot::claim(&dir, "v", "h").unwrap_err();
        assert!(e.to_string().contains(".v@h.guard is a symbolic link"), "{e}");
        assert_eq!(fs::read(&victim).unwrap(), before);
    }

    /// See: issue 14. A key left by a killed broker is reused only within the key's validity.
    #[test]
    fn issue_14_a_stale_key_file_is_reused_only_while_young() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = private_dir(&tmp);
        let young = leave_key(&dir, Duration::from_secs(10));
        let slot = KeySlot::claim(&dir, "u", "h").unwrap();
        assert!(slot.reused(), "10 s old: ssh may have loaded it, and a push makes it valid again");
        assert_eq!(slot.key().fingerprint(), young);
        drop(slot);

        let old = leave_key(&dir, Duration::from_secs(120));
        let slot = KeySlot::claim(&dir, "u", "h").unwrap();
        assert!(!slot.reused(), "120 s old: older than the key's 60 s validity");
        assert_ne!(slot.key().fingerprint(), old);

        // While a live connection holds it, age does not matter (its ssh has loaded it).
        slot.write().unwrap();
        let later = SystemTime::now() + Duration::from_secs(600);
        let other = KeySlot::claim_at(&dir, "u", "h", later).unwrap();
        assert!(other.reused());
        assert_eq!(other.key().fingerprint(), slot.key().fingerprint());
    }

    // See: issue 14 (doctor says what the next connection does with a key a killed broker left).
    #[test]
    fn inspect_describes_a_left_over_key_without_touching_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = private_dir(&tmp);
        let now = SystemTime::now();
        assert_eq!(inspect(&dir, "u", "h", now), None, "no file");

        leave_key(&dir, Duration::from_secs(10));
        let young = inspect(&dir, "u", "h", now).expect("a left-over file");
        assert_eq!(young.replaced_because, None, "reused: within the 60 s validity");
        assert!(young.age.is_some_and(|a| a >= Duration::from_secs(9)));

        let fingerprint = leave_key(&dir, Duration::from_secs(120));
        let old = inspect(&dir, "u", "h", now).expect("a left-over file");
        assert!(old.replaced_because.as_deref().is_some_and(|w| w.contains("longer than the pushed key's 60 s")));
        fs::set_permissions(dir.join("u@h"), Permissions::from_mode(0o644)).unwrap();
        let planted = inspect(&dir, "u", "h", now).expect("a left-over file");
        assert_eq!(planted.replaced_because.as_deref(), Some("it was not created by ec2-broker: mode 0644"));
        // Nothing was changed: no lock file made, the key still there.
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["u@h"]);
        fs::set_permissions(dir.join("u@h"), Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            EphemeralKey::from_openssh_private(&fs::read_to_string(dir.join("u@h")).unwrap()).unwrap().fingerprint(),
            fingerprint
        );

        // In use by a live connection: not a left-over.
        let slot = KeySlot::claim(&dir, "u", "h").unwrap();
        slot.write().unwrap();
        assert_eq!(inspect(&dir, "u", "h", now + Duration::from_secs(600)), None);
    }
}
