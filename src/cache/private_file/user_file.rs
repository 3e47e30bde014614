//! Rewriting a file the user keeps and other programs write to (known_hosts, which ssh appends
//! to while it connects), so that nothing about it changes but the edit:
//!
//! - a symbolic link stays a link: the temporary file is made beside the link's *target* and
//!   renamed onto it;
//! - owner, group and mode stay (the owner is given back with `fchown` when running as root;
//!   only the temporary file and the backup, which the broker creates, are ever chmod-ed);
//! - a backup of what was replaced is kept beside it, created `O_EXCL` with the same owner and
//!   mode: `NAME.ec2-broker-backup.<UTC time>`;
//! - lines appended meanwhile are not lost: the file is read again just before the rename, and if
//!   it changed, the edit is made again on what it holds now (the edit may refuse instead).

use std::fs::{self, File, Metadata, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::io::Errno;

use super::dir::{Existing, PrivateDir};
use super::{PrivateFileError, current_uid};

/// Rounds of read, edit, write, read again before giving up on a file that keeps changing
/// (ssh appends a line per new host: two changes in the few milliseconds a round takes would
/// already be unusual).
const ATTEMPTS: u32 = 3;
/// Backups made in the same second get `.1`, `.2`, … up to this.
const BACKUP_SUFFIXES: u32 = 100;

/// Where a rewrite went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// The file that was replaced (the symbolic link's target when the path was a link).
    pub target: PathBuf,
    /// The copy of what it held before.
    pub backup: PathBuf,
}

/// Replaces the file at `path` (following symbolic links to the file itself) with what `edit`
/// makes of its current bytes; `edit` returns `None` to refuse (nothing is written then:
/// [`PrivateFileError::Changed`]). `edit` may be called again, with the file's new bytes, when
/// the file changes before the rename; `now` names the backup.
pub(crate) fn rewrite(
    path: &Path,
    now: SystemTime,
    mut edit: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<Rewritten, PrivateFileError> {
    let target = fs::canonicalize(path).map_err(PrivateFileError::io("resolving", path))?;
    let (dir_path, name) = super::split(&target)?;
    let dir = PrivateDir::open_unchecked(dir_path)?
        .ok_or_else(|| PrivateFileError::io("opening directory", dir_path)(std::io::ErrorKind::NotFound.into()))?;
    for _ in 0..ATTEMPTS {
        let (before, meta) = read_regular(&dir, name)?;
        let owner = Owner::of(&meta, &target)?;
        let after = edit(&before).ok_or_else(|| PrivateFileError::Changed { path: target.clone() })?;

        let (tmp_file, tmp) = dir.create_temp(name, 0o600)?;
        let tmp = Created::new(&dir, tmp);
        fill(&tmp_file, &after, &owner).map_err(PrivateFileError::io("writing", &dir.join(&tmp.name)))?;
        let (backup_file, backup) = create_backup(&dir, name, now)?;
        let backup = Created::new(&dir, backup);
        fill(&backup_file, &before, &owner).map_err(PrivateFileError::io("writing", &dir.join(&backup.name)))?;

        let (again, meta_again) = read_regular(&dir, name)?;
        if again != before || (meta_again.dev(), meta_again.ino()) != (meta.dev(), meta.ino()) {
            tracing::debug!(file = %target.display(), "changed while being rewritten: editing it again");
            continue;
        }
        dir.rename(&tmp.keep(), name)?;
        let backup = dir.join(&backup.keep());
        return Ok(Rewritten { target, backup });
    }
    Err(PrivateFileError::KeptChanging { path: target })
}

/// The owner, group and mode a replacement must have.
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
    as_root: bool,
}

impl Owner {
    /// Refuses a file of another user unless running as root (who can give it back).
    fn of(meta: &Metadata, path: &Path) -> Result<Owner, PrivateFileError> {
        let uid = current_uid();
        if uid != 0 && meta.uid() != uid {
            return Err(PrivateFileError::ForeignFile { path: path.to_path_buf(), owner: meta.uid() });
        }
        Ok(Owner { uid: meta.uid(), gid: meta.gid(), mode: meta.mode() & 0o7777, as_root: uid == 0 })
    }
}

/// Writes `bytes` to a file the broker just created, gives it `owner`'s owner, group and mode,
/// and syncs it.
fn fill(mut file: &File, bytes: &[u8], owner: &Owner) -> std::io::Result<()> {
    file.write_all(bytes)?;
    if owner.as_root {
        std::os::unix::fs::fchown(file, Some(owner.uid), Some(owner.gid))?;
    } else if owner.gid != rustix::process::getegid().as_raw() {
        // The group of a setgid directory, or another group of the user's: keep it if allowed.
        if let Err(e) = std::os::unix::fs::fchown(file, None, Some(owner.gid)) {
            tracing::debug!(gid = owner.gid, error = %e, "could not keep the file's group");
        }
    }
    // After fchown, which clears set-id bits.
    file.set_permissions(Permissions::from_mode(owner.mode))?;
    file.sync_all()
}

/// The bytes and `fstat` of `name`, a regular file (not followed if it is a link: the path was
/// resolved, so a link here was put there since).
fn read_regular(dir: &PrivateDir, name: &str) -> Result<(Vec<u8>, Metadata), PrivateFileError> {
    let path = dir.join(name);
    match dir.open_existing(name)? {
        Some(Existing::File { mut file, meta }) => {
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(PrivateFileError::io("reading", &path))?;
            Ok((bytes, meta))
        }
        Some(Existing::Other(what)) => {
            Err(PrivateFileError::io("reading", &path)(std::io::Error::other(format!("it is {what}"))))
        }
        None => Err(PrivateFileError::io("reading", &path)(std::io::ErrorKind::NotFound.into())),
    }
}

/// A new backup file beside `name`, created `O_EXCL|O_NOFOLLOW` (mode set by [`fill`]).
fn create_backup(dir: &PrivateDir, name: &str, now: SystemTime) -> Result<(File, String), PrivateFileError> {
    let base = format!("{name}.ec2-broker-backup.{}", utc_stamp(now));
    for n in 0..BACKUP_SUFFIXES {
        let candidate = if n == 0 { base.clone() } else { format!("{base}.{n}") };
        match dir.create_new(&candidate, 0o600) {
            Ok(file) => return Ok((file, candidate)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(PrivateFileError::io("creating the backup", &dir.join(&candidate))(e.into())),
        }
    }
    Err(PrivateFileError::io("creating the backup", &dir.join(&base))(std::io::ErrorKind::AlreadyExists.into()))
}

/// A file this rewrite created: removed on drop unless kept.
struct Created<'a> {
    dir: &'a PrivateDir,
    name: String,
    kept: bool,
}

impl<'a> Created<'a> {
    fn new(dir: &'a PrivateDir, name: String) -> Self {
        Created { dir, name, kept: false }
    }

    fn keep(mut self) -> String {
        self.kept = true;
        std::mem::take(&mut self.name)
    }
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.dir.remove(&self.name);
        }
    }
}

/// `20260508T101500Z`: sorts by time, and has no `:` (which scp and rsync read as a host).
fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days (http://howardhinnant.github.io/date_algorithms.html).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn backups(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".ec2-broker-backup."))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(at(0)), "19700101T000000Z");
        assert_eq!(utc_stamp(at(1_800_000_000)), "20270115T080000Z");
        assert_eq!(utc_stamp(at(951_782_400)), "20000229T000000Z");
    }

    /// See: issue 14. The old `write_fixed` replaced a symlinked known_hosts with a plain file,
    /// gave it root's ownership and copied the backup through `FILE.old`.
    #[test]
    fn issue_14_a_link_stays_a_link_and_owner_mode_and_backup_follow_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let real_dir = tmp.path().join("dotfiles");
        fs::create_dir(&real_dir).unwrap();
        let target = real_dir.join("known_hosts");
        fs::write(&target, "a\r\nb\n").unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o640)).unwrap();
        let as_root = current_uid() == 0;
        if as_root {
            std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
        }
        let link = tmp.path().join("known_hosts");
        symlink(&target, &link).unwrap();

        let done = rewrite(&link, at(1_800_000_000), |old| Some(old.to_ascii_uppercase())).unwrap();
        assert_eq!(done.target, fs::canonicalize(&target).unwrap());
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
        assert_eq!(fs::read(&target).unwrap(), b"A\r\nB\n");
        let meta = fs::metadata(&target).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(done.backup, done.target.with_file_name("known_hosts.ec2-broker-backup.20270115T080000Z"));
        assert_eq!(fs::read(&done.backup).unwrap(), b"a\r\nb\n");
        let backup_meta = fs::metadata(&done.backup).unwrap();
        assert_eq!(backup_meta.mode() & 0o7777, 0o640, "the backup has the file's mode");
        if as_root {
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner kept");
            assert_eq!((backup_meta.uid(), backup_meta.gid()), (65534, 65534));
        }
        // A second rewrite in the same second gets its own backup; no temporary file is left.
        let again = rewrite(&link, at(1_800_000_000), |old| Some(old.to_vec())).unwrap();
        assert_eq!(again.backup.file_name().unwrap(), "known_hosts.ec2-broker-backup.20270115T080000Z.1");
        assert_eq!(backups(&real_dir).len(), 2);
        assert_eq!(fs::read_dir(&real_dir).unwrap().count(), 3, "the file and two backups, nothing else");
    }

    /// See: issue 14. ssh appending a line between the read and the rename: the edit runs again
    /// on the new text instead of the appended line being lost.
    #[test]
    fn issue_14_a_line_appended_during_the_rewrite_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("known_hosts");
        fs::write(&file, "old\nkeep\n").unwrap();
        let mut calls = 0;
        let done = rewrite(&file, at(0), |current| {
            calls += 1;
            if calls == 1 {
                // What ssh does while the broker is busy: open for append, write a line.
                let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
                f.write_all(b"new-host ssh-ed25519 AAAA\n").unwrap();
            }
            let text = String::from_utf8(current.to_vec()).unwrap();
            Some(text.replace("old\n", "").into_bytes())
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep\nnew-host ssh-ed25519 AAAA\n");
        assert_eq!(fs::read_to_string(&done.backup).unwrap(), "old\nkeep\nnew-host ssh-ed25519 AAAA\n");
        assert_eq!(backups(tmp.path()).len(), 1, "the first round's backup was removed");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);

        // An edit that refuses writes nothing.
        let e = rewrite(&file, at(0), |_| None).unwrap_err();
        assert!(matches!(e, PrivateFileError::Changed { .. }), "{e:?}");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_file_that_keeps_changing_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("known_hosts");
        fs::write(&file, "x\n").unwrap();
        let e = rewrite(&file, at(0), |current| {
            fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(b"y\n").unwrap();
            Some(current.to_vec())
        })
        .unwrap_err();
        assert!(matches!(e, PrivateFileError::KeptChanging { .. }), "{e:?}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "x\ny\ny\ny\n", "only the appends happened");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "no backup or temporary file left");
    }
}
