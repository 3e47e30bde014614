//! The one place files are written and read where another local user, or a file planted by one,
//! could hijack them.
//!
//! - [`PrivateDir`]: a directory of the user's own (created 0700), checked once by owner and mode
//!   and then used through its file descriptor, so that a directory swapped in under the same
//!   name afterwards is never written to. Files in it are created with random names,
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, synced and renamed into place.
//! - [`write_private`] and [`read_private`]: one cache or credentials file by path.
//! - [`user_file`]: rewriting a file the user owns and ssh writes to (known_hosts): through a
//!   symbolic link, keeping owner, mode and a backup, and never losing lines ssh appended meanwhile.

mod dir;
pub(crate) mod user_file;

use std::io;
use std::path::{Path, PathBuf};

pub(crate) use dir::{DirPolicy, Existing, PrivateDir};

/// Why a private file or its directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivateFileError {
    /// The directory belongs to another user, who could swap or read what the broker keeps in it.
    #[error("directory {dir} belongs to uid {owner}, not to you (uid {uid}): use a directory of your own")]
    ForeignDir {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The current (effective) user.
        uid: u32,
    },
    /// The directory is open to other users.
    #[error("directory {dir} is {access} by other users (mode {mode:04o}): run chmod 700 {dir}")]
    OpenDir {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// `writable` or `readable`.
        access: &'static str,
    },
    /// A file the broker did not make: a symbolic link, not a regular file, another owner, a
    /// mode that lets others write.
    #[error("{path} {why}: ec2-broker did not create it; remove it")]
    NotOurs {
        /// The file.
        path: PathBuf,
        /// `is a symbolic link`, `belongs to uid 65534`, …
        why: String,
    },
    /// A user's file of another owner, which only root can rewrite keeping that owner.
    #[error("{path} belongs to uid {owner}: only that user, or root, can rewrite it keeping its owner")]
    ForeignFile {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A file being rewritten changed in a way that cannot be merged (not only appended to).
    #[error(
        "{path} changed while ec2-broker was working on it (not only appended to): nothing was written; run the command again"
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A file being rewritten kept changing between reading it and replacing it.
    #[error("{path} kept changing while ec2-broker was rewriting it: nothing was written; run the command again")]
    KeptChanging {
        /// The file.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl PrivateFileError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PrivateFileError {
        let path = path.to_path_buf();
        move |source| PrivateFileError::Io { action, path, source }
    }
}

/// Writes `text` to `file` atomically (a randomly named temporary file beside it, created
/// `O_EXCL|O_NOFOLLOW` and synced, then a rename), mode 0600. Missing directories are created
/// 0700; an existing one must belong to the user and not be writable by others
/// ([`DirPolicy::NoOtherWriters`]).
pub(crate) fn write_private(file: &Path, text: &str) -> Result<(), PrivateFileError> {
    let (dir, name) = split(file)?;
    PrivateDir::create(dir, DirPolicy::NoOtherWriters)?.write_atomic(name, text.as_bytes())
}

/// The text of `file` if it exists, refusing what the broker cannot have written: a symbolic link,
/// something other than a regular file, a file of another owner or writable by others, or one in
/// a directory that fails [`DirPolicy::NoOtherWriters`].
pub(crate) fn read_private(file: &Path) -> Result<Option<String>, PrivateFileError> {
    let (dir, name) = split(file)?;
    let Some(dir) = PrivateDir::open(dir, DirPolicy::NoOtherWriters)? else { return Ok(None) };
    dir.read_own(name)
}

/// A cache file's text: empty when there is none or when it cannot be trusted (that is logged
/// at warn, naming the file and why: a cache is only a hint, so the broker goes on without it).
pub(crate) fn read_hint(file: &Path) -> String {
    read_hint_up_to(file, dir::MAX_PRIVATE_FILE)
}

/// [`read_hint`] of a cache that may grow to `max` bytes (the consoles `known-hosts audit` read).
pub(crate) fn read_hint_up_to(file: &Path, max: u64) -> String {
    let read = || -> Result<Option<String>, PrivateFileError> {
        let (dir, name) = split(file)?;
        let Some(dir) = PrivateDir::open(dir, DirPolicy::NoOtherWriters)? else { return Ok(None) };
        dir.read_own_up_to(name, max)
    };
    match read() {
        Ok(text) => text.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(file = %file.display(), "not using a cache file: {e}");
            String::new()
        }
    }
}

/// The current effective uid (the owner every private file and directory must have).
pub(crate) fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn split(file: &Path) -> Result<(&Path, &str), PrivateFileError> {
    let bad = || PrivateFileError::Io {
        action: "using",
        path: file.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name in a directory"),
    };
    let name = file.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let dir = file.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok_or_else(bad)?;
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_modes_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/c.json");
        write_private(&file, "one").unwrap();
        write_private(&file, "two").unwrap();
        assert_eq!(read_private(&file).unwrap().as_deref(), Some("two"));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(std::fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1, "no temporary file left");
        assert_eq!(read_private(&dir.path().join("a/b/none.json")).unwrap(), None);
        assert_eq!(read_private(&dir.path().join("nowhere/none.json")).unwrap(), None, "no directory: no file");
    }

    /// See: issue 14. The old code wrote through `FILE.tmp.PID`, so a symlink planted there sent
    /// the cache to whatever file it named.
    #[test]
    fn issue_14_a_symlink_planted_at_the_old_temp_name_or_the_target_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let file = dir.join("instances.json");
        symlink(&victim, dir.join(format!("instances.tmp.{}", std::process::id()))).unwrap();
        write_private(&file, "cache").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "cache");

        // A symlink at the target itself is replaced, not written through, and never read.
        std::fs::remove_file(&file).unwrap();
        symlink(&victim, &file).unwrap();
        let e = read_private(&file).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(read_hint(&file), "");
        write_private(&file, "cache").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
    }

    /// See: issue 14. Tests run as root, so a file or directory can be given to uid 65534.
    #[test]
    fn issue_14_foreign_or_open_cache_dirs_and_planted_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = write_private(&open.join("instances.json"), "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("directory {0} is writable by other users (mode 0777): run chmod 700 {0}", open.display())
        );
        assert!(std::fs::read_dir(&open).unwrap().next().is_none(), "nothing written");
        assert!(read_private(&open.join("instances.json")).is_err());

        if current_uid() == 0 {
            let foreign = tmp.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let e = write_private(&foreign.join("routes.json"), "x").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "directory {} belongs to uid 65534, not to you (uid 0): use a directory of your own",
                    foreign.display()
                )
            );

            // A file planted by another user in a directory of ours is not read.
            let ours = tmp.path().join("ours");
            write_private(&ours.join("routes.json"), "{}").unwrap();
            std::os::unix::fs::chown(ours.join("routes.json"), Some(65534), None).unwrap();
            let e = read_private(&ours.join("routes.json")).unwrap_err();
            assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        }
    }
}
