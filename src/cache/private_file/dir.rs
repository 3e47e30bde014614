//! [`PrivateDir`]: a directory checked once, then used only through its file descriptor
//! (`openat`, `renameat`, `unlinkat`), so every file it creates lands in the directory that passed.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::{PrivateFileError, current_uid};

/// Cache, key and credentials files are small; anything larger was not written by the broker.
pub(super) const MAX_PRIVATE_FILE: u64 = 1 << 20;
/// Attempts at a random temporary name before giving up (a collision of 64 random bits means
/// something else is going on).
const TEMP_ATTEMPTS: u32 = 8;

/// Which other-user permission bits a private directory may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirPolicy {
    /// Others may read and enter it but not write (caches: 0755 is fine, 0775 and 0777 are not).
    NoOtherWriters,
    /// Others have no access at all (keys: 0700).
    OwnerOnly,
}

impl DirPolicy {
    /// The permission bits that fail this policy, and how to say so.
    fn forbidden(self) -> (u32, &'static str) {
        match self {
            DirPolicy::NoOtherWriters => (0o022, "writable"),
            DirPolicy::OwnerOnly => (0o077, "readable"),
        }
    }
}

/// A directory owned by the current user that others cannot write to, held open.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    fd: File,
    path: PathBuf,
}

/// What an existing name in a directory turned out to be, opened without following a link.
#[derive(Debug)]
pub(crate) enum Existing {
    /// A regular file (of any owner and mode: the caller decides).
    File {
        /// Open for reading.
        file: File,
        /// Its `fstat`.
        meta: Metadata,
    },
    /// Something else: `a symbolic link`, `a directory`, `a FIFO`, …
    Other(&'static str),
}

impl PrivateDir {
    /// Opens `path`, creating it and any missing parent 0700, and checks it against `policy`.
    pub(crate) fn create(path: &Path, policy: DirPolicy) -> Result<PrivateDir, PrivateFileError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(PrivateFileError::io("creating directory", path))?;
        PrivateDir::open(path, policy)?.ok_or_else(|| PrivateFileError::Io {
            action: "opening directory",
            path: path.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        })
    }

    /// Opens an existing `path` (`None` when there is none) and checks it against `policy`: it
    /// must belong to the current user and have none of the policy's forbidden bits. A symbolic
    /// link to such a directory is fine: what is checked and used is the directory itself.
    pub(crate) fn open(path: &Path, policy: DirPolicy) -> Result<Option<PrivateDir>, PrivateFileError> {
        let Some(dir) = PrivateDir::open_unchecked(path)? else { return Ok(None) };
        let meta = dir.fd.metadata().map_err(PrivateFileError::io("reading the status of", path))?;
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(PrivateFileError::ForeignDir { dir: path.to_path_buf(), owner: meta.uid(), uid });
        }
        let (forbidden, access) = policy.forbidden();
        let mode = meta.mode() & 0o7777;
        if mode & forbidden != 0 {
            return Err(PrivateFileError::OpenDir { dir: path.to_path_buf(), mode, access });
        }
        Ok(Some(dir))
    }

    /// A directory the user named as a destination (of `cp`), whatever its owner and mode (`/tmp`
    /// is fine): what the broker creates in it is still made `O_EXCL|O_NOFOLLOW` 0600 and renamed
    /// into place, and what it reads back must pass [`PrivateDir::read_own`] or
    /// [`PrivateDir::open_own`].
    pub(crate) fn open_destination(path: &Path) -> Result<Option<PrivateDir>, PrivateFileError> {
        PrivateDir::open_unchecked(path)
    }

    /// Opens `name` for reading and writing without following a symbolic link; `None` when it is
    /// missing. It must be a regular file of the current user that others cannot write (one the
    /// broker made earlier, such as a part file being resumed).
    pub(crate) fn open_own(&self, name: &str) -> Result<Option<File>, PrivateFileError> {
        let path = self.join(name);
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(PrivateFileError::NotOurs { path, why: "is a symbolic link".into() }),
            Err(e) => return Err(PrivateFileError::io("opening", &path)(e.into())),
        };
        let meta = file.metadata().map_err(PrivateFileError::io("reading the status of", &path))?;
        let why = if !meta.file_type().is_file() {
            Some("is not a regular file".to_string())
        } else if meta.uid() != current_uid() {
            Some(format!("belongs to uid {}", meta.uid()))
        } else if meta.mode() & 0o022 != 0 {
            Some(format!("is writable by other users (mode {:04o})", meta.mode() & 0o7777))
        } else {
            None
        };
        match why {
            Some(why) => Err(PrivateFileError::NotOurs { path, why }),
            None => Ok(Some(file)),
        }
    }

    /// Opens `path` as a directory without checking owner or mode (for a user's own files, such
    /// as known_hosts, whose directory is theirs to arrange).
    pub(super) fn open_unchecked(path: &Path) -> Result<Option<PrivateDir>, PrivateFileError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(PrivateDir { fd: File::from(fd), path: path.to_path_buf() })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => {
                Err(PrivateFileError::Io { action: "opening directory", path: path.to_path_buf(), source: e.into() })
            }
        }
    }

    /// The directory's path.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `name` in this directory (for messages and for ssh, which reads files by path).
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces `name` with `bytes` atomically, mode 0600 (see [`PrivateDir::create_temp`]).
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), PrivateFileError> {
        let (mut file, tmp) = self.create_temp(name, 0o600)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(PrivateFileError::io("writing", &self.join(&tmp)))
            .and_then(|()| self.rename(&tmp, name));
        if written.is_err() {
            let _ = self.remove(&tmp);
        }
        written
    }

    /// A new file beside `name` with a random name (`.NAME.<16 hex digits>.tmp`), created
    /// `O_CREAT|O_EXCL|O_NOFOLLOW` with `mode`: nothing planted under that name is ever opened.
    pub(crate) fn create_temp(&self, name: &str, mode: u32) -> Result<(File, String), PrivateFileError> {
        for _ in 0..TEMP_ATTEMPTS {
            let tmp = format!(".{name}.{:016x}.tmp", rand::random::<u64>());
            match self.create_new(&tmp, mode) {
                Ok(file) => return Ok((file, tmp)),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(PrivateFileError::io("creating", &self.join(&tmp))(e.into())),
            }
        }
        Err(PrivateFileError::io("creating a temporary file beside", &self.join(name))(
            io::ErrorKind::AlreadyExists.into(),
        ))
    }

    /// Creates `name`, which must not exist (`O_CREAT|O_EXCL|O_NOFOLLOW`), with `mode`.
    pub(crate) fn create_new(&self, name: &str, mode: u32) -> Result<File, Errno> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(self.fd.as_fd(), name, flags, Mode::from_raw_mode(mode)).map(File::from)
    }

    /// What is at `name`, if anything, opened read-only without following a symbolic link (and
    /// without blocking on a FIFO).
    pub(crate) fn open_existing(&self, name: &str) -> Result<Option<Existing>, PrivateFileError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Ok(Some(Existing::Other("a symbolic link"))),
            Err(e) => return Err(PrivateFileError::io("opening", &self.join(name))(e.into())),
        };
        let meta = file.metadata().map_err(PrivateFileError::io("reading the status of", &self.join(name)))?;
        let ft = meta.file_type();
        let existing = if ft.is_file() {
            Existing::File { file, meta }
        } else if ft.is_dir() {
            Existing::Other("a directory")
        } else {
            Existing::Other("not a regular file")
        };
        Ok(Some(existing))
    }

    /// The text of `name` if it exists and is a regular file of the current user that others
    /// cannot write; anything else is [`PrivateFileError::NotOurs`].
    pub(crate) fn read_own(&self, name: &str) -> Result<Option<String>, PrivateFileError> {
        self.read_own_up_to(name, MAX_PRIVATE_FILE)
    }

    /// [`PrivateDir::read_own`] of a file that may hold up to `max` bytes (a larger one is
    /// refused, never read in part: a cut JSON document would not parse anyway).
    pub(crate) fn read_own_up_to(&self, name: &str, max: u64) -> Result<Option<String>, PrivateFileError> {
        let path = self.join(name);
        let not_ours = |why: String| PrivateFileError::NotOurs { path: path.clone(), why };
        let (mut file, meta) = match self.open_existing(name)? {
            None => return Ok(None),
            Some(Existing::Other(what)) => return Err(not_ours(format!("is {what}"))),
            Some(Existing::File { file, meta }) => (file, meta),
        };
        if meta.uid() != current_uid() {
            return Err(not_ours(format!("belongs to uid {}", meta.uid())));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(not_ours(format!("is writable by other users (mode {:04o})", meta.mode() & 0o7777)));
        }
        if meta.len() > max {
            return Err(not_ours(format!("is larger ({} bytes) than the broker writes there ({max})", meta.len())));
        }
        let mut text = String::new();
        Read::by_ref(&mut file).take(max).read_to_string(&mut text).map_err(PrivateFileError::io("reading", &path))?;
        Ok(Some(text))
    }

    /// Opens (creating 0600 if needed) the lock file `name`, without following a symbolic link;
    /// it must be a regular file of the current user.
    pub(crate) fn open_lock(&self, name: &str) -> Result<File, PrivateFileError> {
        let path = self.join(name);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(self.fd.as_fd(), name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => {
                return Err(PrivateFileError::NotOurs { path, why: "is a symbolic link, not a lock file".into() });
            }
            Err(e) => return Err(PrivateFileError::io("opening lock file", &path)(e.into())),
        };
        let meta = file.metadata().map_err(PrivateFileError::io("reading the status of", &path))?;
        if !meta.file_type().is_file() {
            return Err(PrivateFileError::NotOurs { path, why: "is not a regular file".into() });
        }
        if meta.uid() != current_uid() {
            return Err(PrivateFileError::NotOurs { path, why: format!("belongs to uid {}", meta.uid()) });
        }
        Ok(file)
    }

    /// Renames `from` to `to`, both in this directory (replacing `to`, even a symbolic link,
    /// without following it), then syncs the directory so the rename survives a crash.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), PrivateFileError> {
        rustix::fs::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)
            .map_err(|e| PrivateFileError::io("renaming into place", &self.join(to))(e.into()))?;
        if let Err(e) = rustix::fs::fsync(self.fd.as_fd()) {
            tracing::debug!(dir = %self.path.display(), error = %e, "could not sync the directory");
        }
        Ok(())
    }

    /// Removes `name` (a symbolic link itself, never what it points to); a missing one is fine.
    pub(crate) fn remove(&self, name: &str) -> Result<(), PrivateFileError> {
        match rustix::fs::unlinkat(self.fd.as_fd(), name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(PrivateFileError::io("removing", &self.join(name))(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn policies() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(PrivateDir::open(&dir, DirPolicy::NoOtherWriters).unwrap().is_some());
        let e = PrivateDir::open(&dir, DirPolicy::OwnerOnly).unwrap_err();
        assert!(e.to_string().contains("is readable by other users (mode 0755): run chmod 700"), "{e}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(PrivateDir::open(&dir, DirPolicy::NoOtherWriters), Err(PrivateFileError::OpenDir { .. })));
        assert!(PrivateDir::open(&tmp.path().join("none"), DirPolicy::OwnerOnly).unwrap().is_none());
        let created = PrivateDir::create(&tmp.path().join("x/y"), DirPolicy::OwnerOnly).unwrap();
        assert_eq!(created.path(), tmp.path().join("x/y"));
    }

    #[test]
    fn lock_files_are_ours_and_not_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::create(&tmp.path().join("d"), DirPolicy::OwnerOnly).unwrap();
        dir.open_lock("a.lock").unwrap();
        assert_eq!(fs::metadata(dir.join("a.lock")).unwrap().permissions().mode() & 0o777, 0o600);
        let victim = tmp.path().join("victim");
        fs::write(&victim, "x").unwrap();
        symlink(&victim, dir.join("b.lock")).unwrap();
        let e = dir.open_lock("b.lock").unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        fs::create_dir(dir.join("c.lock")).unwrap();
        assert!(dir.open_lock("c.lock").is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "x");
    }

    #[test]
    fn existing_names_are_classified_without_following() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::create(&tmp.path().join("d"), DirPolicy::OwnerOnly).unwrap();
        assert!(dir.open_existing("none").unwrap().is_none());
        fs::write(dir.join("f"), "x").unwrap();
        assert!(matches!(dir.open_existing("f").unwrap(), Some(Existing::File { .. })));
        symlink(dir.join("f"), dir.join("l")).unwrap();
        assert!(matches!(dir.open_existing("l").unwrap(), Some(Existing::Other("a symbolic link"))));
        fs::create_dir(dir.join("sub")).unwrap();
        assert!(matches!(dir.open_existing("sub").unwrap(), Some(Existing::Other("a directory"))));
        dir.remove("l").unwrap();
        dir.remove("l").unwrap();
        assert!(dir.join("f").exists(), "removing a link leaves its target");
    }
}
