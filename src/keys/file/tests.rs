//! Key files: reuse, replacement of planted or stale files, locks, and what doctor sees.
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
    let a = KeySlot::claim(&dir, "ec2-user", "web-1", &|_| false).unwrap();
    assert!(!a.reused());
    assert_eq!(mode(&dir), 0o700);
    a.write().unwrap();
    assert_eq!(mode(a.path()), 0o600);

    // A second connection while the first is alive reuses the key ssh may already have loaded.
    let b = KeySlot::claim(&dir, "ec2-user", "web-1", &|_| false).unwrap();
    assert!(b.reused());
    assert_eq!(b.key().fingerprint(), a.key().fingerprint());

    drop(a);
    assert!(b.path().exists(), "still in use by b");
    let path = b.path().to_path_buf();
    drop(b);
    assert!(!path.exists(), "last user removes it");

    // The next connection gets a fresh key.
    let c = KeySlot::claim(&dir, "ec2-user", "web-1", &|_| false).unwrap();
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
    let e = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap_err();
    assert!(matches!(e, KeyFileError::File(PrivateFileError::OpenDir { .. })), "{e:?}");
    assert!(e.to_string().contains("run chmod 700"), "{e}");
    assert!(matches!(KeySlot::claim(tmp.path(), "u", "a/b", &|_| false), Err(KeyFileError::BadName(_))));
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
    let e = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("directory {} belongs to uid 65534, not to you (uid 0): use a directory of your own", dir.display())
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
        let slot = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
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
    let slot = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
    assert!(!slot.reused());
    assert_ne!(slot.key().fingerprint(), victim_key.fingerprint());
    slot.write().unwrap();
    drop(slot);
    assert_eq!(fs::read(&victim).unwrap(), before, "the link's target is untouched");

    symlink(&victim, dir.join(".v@h.guard")).unwrap();
    let e = KeySlot::claim(&dir, "v", "h", &|_| false).unwrap_err();
    assert!(e.to_string().contains(".v@h.guard is a symbolic link"), "{e}");
    assert_eq!(fs::read(&victim).unwrap(), before);
}

/// See: issue 14. A key left by a killed broker is reused only within the key's validity.
#[test]
fn issue_14_a_stale_key_file_is_reused_only_while_young() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = private_dir(&tmp);
    let young = leave_key(&dir, Duration::from_secs(10));
    let slot = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
    assert!(slot.reused(), "10 s old: ssh may have loaded it, and a push makes it valid again");
    assert_eq!(slot.key().fingerprint(), young);
    drop(slot);

    let old = leave_key(&dir, Duration::from_secs(120));
    let slot = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
    assert!(!slot.reused(), "120 s old: older than the key's 60 s validity");
    assert_ne!(slot.key().fingerprint(), old);

    // While a live connection holds it, age does not matter (its ssh has loaded it).
    slot.write().unwrap();
    let later = SystemTime::now() + Duration::from_secs(600);
    let other = KeySlot::claim_at(&dir, "u", "h", later, &|_| false).unwrap();
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
    let slot = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
    slot.write().unwrap();
    assert_eq!(inspect(&dir, "u", "h", now + Duration::from_secs(600)), None);
}

/// Issue 19 (bursts): a kept key leaves ssh's path when its last user ends, comes back only when
/// the caller's reuse test allows it, and a refused key is removed at once and never kept.
#[test]
fn issue_19_kept_out_of_ssh_path_and_back_only_when_allowed() {
    // See: issue 19
    let tmp = tempfile::tempdir().unwrap();
    let dir = private_dir(&tmp);
    let mut a = KeySlot::claim(&dir, "u", "h", &|_| true).unwrap();
    assert_eq!(a.origin(), Origin::Fresh, "nothing kept yet");
    a.write().unwrap();
    a.keep_for_reuse(true);
    let fingerprint = a.key().fingerprint();
    let path = a.path().to_path_buf();
    drop(a);
    assert!(!path.exists(), "a starting ssh must not load a kept key");
    assert!(dir.join(".u@h.kept").exists());

    // Allowed: the same key, back where ssh reads it, not written again.
    let mut b = KeySlot::claim(&dir, "u", "h", &|k| k.fingerprint() == fingerprint).unwrap();
    assert_eq!(b.origin(), Origin::Kept);
    assert_eq!(b.key().fingerprint(), fingerprint);
    assert!(path.exists() && !dir.join(".u@h.kept").exists());
    b.keep_for_reuse(true);
    drop(b);

    // Not allowed (expired, another instance, …): the kept file goes and a fresh key is made.
    let mut c = KeySlot::claim(&dir, "u", "h", &|_| false).unwrap();
    assert_eq!(c.origin(), Origin::Fresh);
    assert_ne!(c.key().fingerprint(), fingerprint);
    assert!(!dir.join(".u@h.kept").exists());
    c.write().unwrap();
    c.keep_for_reuse(true);

    // Refused: removed at once (even while in use), and not kept at the end.
    c.discard();
    assert!(!path.exists());
    drop(c);
    assert!(!dir.join(".u@h.kept").exists());

    // A planted kept file is never brought back.
    leave_key(&dir, Duration::ZERO);
    fs::rename(dir.join("u@h"), dir.join(".u@h.kept")).unwrap();
    fs::set_permissions(dir.join(".u@h.kept"), Permissions::from_mode(0o644)).unwrap();
    let d = KeySlot::claim(&dir, "u", "h", &|_| true).unwrap();
    assert_eq!(d.origin(), Origin::Fresh);
}
