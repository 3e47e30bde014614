//! Replacing a file the user owns (the Include file `ssh-config --write` keeps): atomically
//! (a temporary file with a random name, created `O_EXCL|O_NOFOLLOW` mode 0600 in the same
//! directory, written, fsynced, renamed over the file, the directory fsynced), keeping the
//! file's mode and owner, and following a symlink so the link itself stays. The directory must
//! not be writable by other users, who could swap the file between our check and our rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the file cannot be replaced.
#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    /// An I/O call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The directory lets others replace files in it.
    #[error(
        "{} is writable by other users (mode {mode:o}) or owned by another user: keep the file in a directory only you can write, such as ~/.ssh",
        dir.display()
    )]
    UnsafeDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file belongs to someone else and we could not give the new one their ownership.
    #[error("{} belongs to another user (uid {uid}): run as that user", path.display())]
    OtherOwner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
}

/// What is there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The file that will be replaced: `path`, or where its symlinks lead.
    pub target: PathBuf,
    /// Its text; `None` when it does not exist yet.
    pub text: Option<String>,
}

/// Reads `path` (following symlinks) and checks that it can be replaced safely.
pub fn read(path: &Path) -> Result<Current, UserFileError> {
    let target = match fs::symlink_metadata(path) {
        Ok(_) => fs::canonicalize(path).map_err(io_err("resolving", path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = fs::metadata(&dir).map_err(io_err("reading the directory", &dir))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.mode() & 0o022 != 0 || (meta.uid() != me && meta.uid() != 0) {
        return Err(UserFileError::UnsafeDirectory { dir, mode: meta.mode() & 0o7777 });
    }
    let text = match fs::metadata(&target) {
        Ok(m) if !m.is_file() => return Err(UserFileError::NotAFile { path: target }),
        Ok(_) => Some(fs::read_to_string(&target).map_err(io_err("reading", &target))?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading", &target)(e)),
    };
    Ok(Current { target, text })
}

/// Replaces `target` (from [`read`]) with `text`, keeping its mode and owner (a new file gets
/// mode 0600).
pub fn replace(target: &Path, text: &str) -> Result<(), UserFileError> {
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let old = match fs::metadata(target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading", target)(e)),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = write_new(&tmp, text, old.as_ref()).and_then(|file| {
        fs::rename(&tmp, target).map_err(io_err("renaming into place", target))?;
        drop(file);
        // The rename is durable once the directory is.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("syncing the directory", dir))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Wraps an I/O error with what was being done to which path.
fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> UserFileError + 'p {
    move |source| UserFileError::Io { action, path: path.to_path_buf(), source }
}

/// Creates `tmp` (never an existing file or a symlink), writes and syncs it, with `like`'s mode
/// and owner.
fn write_new(tmp: &Path, text: &str, like: Option<&fs::Metadata>) -> Result<File, UserFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(tmp)
        .map_err(io_err("creating", tmp))?;
    file.write_all(text.as_bytes()).map_err(io_err("writing", tmp))?;
    if let Some(m) = like {
        let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        if (m.uid(), m.gid()) != me {
            std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))
                .map_err(|_| UserFileError::OtherOwner { path: tmp.to_path_buf(), uid: m.uid() })?;
        }
        // Our own new file: its mode is ours to set.
        file.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io_err("setting the mode of", tmp))?;
    }
    file.sync_all().map_err(io_err("syncing", tmp))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn new_file_is_private_and_no_temporary_is_left() {
        let d = private_dir();
        let f = d.path().join("ec2.conf");
        let cur = read(&f).unwrap();
        assert_eq!(cur, Current { target: f.clone(), text: None });
        replace(&cur.target, "Host a\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "Host a\n");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn mode_is_kept_and_a_symlink_stays_a_symlink() {
        let d = private_dir();
        let real = d.path().join("dotfiles-ec2.conf");
        fs::write(&real, "old\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.path().join("ec2.conf");
        symlink(&real, &link).unwrap();
        let cur = read(&link).unwrap();
        assert_eq!(cur.target, fs::canonicalize(&real).unwrap());
        assert_eq!(cur.text.as_deref(), Some("old\n"));
        replace(&cur.target, "new\n").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is kept");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new\n");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn shared_directories_and_non_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(read(&d.path().join("f")), Err(UserFileError::UnsafeDirectory { .. })));
        let d = private_dir();
        fs::create_dir(d.path().join("sub")).unwrap();
        assert!(matches!(read(&d.path().join("sub")), Err(UserFileError::NotAFile { .. })));
    }
}
