//! `key rotate` (issue 17): replacing a key on instances without locking anyone out. For each
//! instance: install the new public key with Run Command ([`super::place::install`]), log in with
//! the new private key over the first route that opens ([`super::connect::login_over`]), and only
//! then remove the old key ([`super::place::revoke`]). A host where the login is not proven keeps
//! the old key; the new key stays installed (it is the user's own key, and removing it again would
//! be a second root edit that can fail too) and the host is reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use russh::keys::{HashAlg, PublicKey};

use super::connect::login_over;
use super::open::{Ctx, RouteOptions, Target, open_first};
use super::place;
use super::plan::{self, Facts};
use crate::aws::Aws;
use crate::keys::EphemeralKey;
use crate::keys::placement::is_fingerprint;
use crate::target::instance::{AddressKind, Instance};

/// How long the proof login may take once a route is open (connect, key exchange, auth).
const PROOF_DEADLINE: Duration = Duration::from_secs(15);

/// The keys of a rotation, read and checked before any call.
pub(crate) struct Keys {
    /// The new private key (the proof logs in with it).
    pub new: EphemeralKey,
    /// The new public key line, as read from FILE.pub.
    pub new_public: String,
    /// The fingerprint of FILE.pub.
    pub new_fingerprint: String,
    /// The fingerprint of the key to remove.
    pub old_fingerprint: String,
}

/// Why the keys could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeysError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no key of the kind expected.
    #[error("{} holds no {what} OpenSSH key{}", path.display(), if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// `private` or `public`.
        what: &'static str,
        /// The parser's words.
        detail: String,
    },
    /// Old and new are the same key.
    #[error("the old and the new key are the same key ({0}): give the key to replace with --old")]
    Same(String),
}

impl Keys {
    /// Reads `new` (private) and `new`.pub, and `old`: a fingerprint, or a public or private key file.
    pub(crate) fn read(old: &str, new: &Path) -> Result<Keys, KeysError> {
        let text = read_small(new)?;
        let new_key = EphemeralKey::from_openssh_private(&text).map_err(|e| KeysError::NotAKey {
            path: new.to_path_buf(),
            what: "private",
            detail: e.to_string(),
        })?;
        if new_key.private_key().is_encrypted() {
            let detail = "it has a passphrase: give a copy without one (ssh-keygen -p)".to_string();
            return Err(KeysError::NotAKey { path: new.to_path_buf(), what: "usable private", detail });
        }
        let pub_path = PathBuf::from(format!("{}.pub", new.display()));
        let new_public = read_small(&pub_path)?.trim().to_string();
        let new_fingerprint = public_fingerprint(&new_public).ok_or_else(|| KeysError::NotAKey {
            path: pub_path.clone(),
            what: "public",
            detail: String::new(),
        })?;
        let old_fingerprint = match is_fingerprint(old) {
            true => old.to_string(),
            false => {
                let path = Path::new(old);
                let text = read_small(path)?;
                match public_fingerprint(text.trim()) {
                    Some(fp) => fp,
                    None => EphemeralKey::from_openssh_private(&text)
                        .map_err(|e| KeysError::NotAKey {
                            path: path.to_path_buf(),
                            what: "public or private",
                            detail: e.to_string(),
                        })?
                        .fingerprint(),
                }
            }
        };
        if old_fingerprint == new_fingerprint {
            return Err(KeysError::Same(new_fingerprint));
        }
        Ok(Keys { new: new_key, new_public, new_fingerprint, old_fingerprint })
    }
}

/// The `SHA256:` fingerprint of a public key line.
pub(crate) fn public_fingerprint(line: &str) -> Option<String> {
    PublicKey::from_openssh(line).ok().map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

/// A file's text, refusing anything larger than a key file.
fn read_small(path: &Path) -> Result<String, KeysError> {
    let read = |path: &Path| -> std::io::Result<String> {
        let bytes = crate::keys::pair::public_key::read_key_file(path)?;
        String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    };
    read(path).map_err(|source| KeysError::Read { path: path.to_path_buf(), source })
}

/// What happened on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostOutcome {
    /// The host as given.
    pub host: String,
    /// The instance id, once resolved.
    pub instance: Option<String>,
    /// The new key is in authorized_keys (installed now or before).
    pub installed: bool,
    /// A login with the new private key was accepted.
    pub proven: bool,
    /// The old key's lines were removed.
    pub old_removed: bool,
    /// The plan, what was done, or what went wrong.
    pub note: String,
}

impl HostOutcome {
    /// Whether the rotation is done on this host.
    pub(crate) fn done(&self) -> bool {
        self.installed && self.proven && self.old_removed
    }
}

/// The plan for one host (a dry run: nothing is sent).
pub(crate) fn plan_for(host: &str, instance: &Instance, keys: &Keys, user: &str) -> HostOutcome {
    HostOutcome {
        host: host.to_string(),
        instance: Some(instance.id.clone()),
        note: format!(
            "plan: install {} for {user}, log in with it, then remove {}",
            keys.new_fingerprint, keys.old_fingerprint
        ),
        ..HostOutcome::default()
    }
}

/// Rotates the key on `instance`: install, prove, revoke, stopping at the first step that fails.
pub(crate) async fn rotate(
    aws: &Aws,
    options: &RouteOptions,
    host: &str,
    instance: &Instance,
    port: u16,
    user: &str,
    keys: &Keys,
) -> HostOutcome {
    let mut out = HostOutcome { host: host.to_string(), instance: Some(instance.id.clone()), ..Default::default() };
    let words = |e: &dyn std::fmt::Display| crate::text::printable(&e.to_string()).into_owned();
    let installed = match place::install(aws, &instance.id, user, &keys.new_public).await {
        Ok(i) => i,
        Err(e) => {
            out.note = format!("install failed: {}; nothing changed", words(&e));
            return out;
        }
    };
    out.installed = true;
    let target = Target { instance, port, address: AddressKind::Private };
    let facts = Facts {
        has_address: instance.address(AddressKind::Private).is_ok(),
        in_vpc: instance.vpc_id.is_some() && instance.private_ip.is_some(),
    };
    let routes = plan::plan(facts, &[], &[]);
    let verdict = match open_first(&routes, &target, &Ctx::new(aws, options)).await {
        Ok(opened) => {
            let route = opened.route;
            (route, login_over(opened, user, &keys.new, PROOF_DEADLINE).await)
        }
        Err(attempts) => {
            let tried: Vec<String> = attempts.iter().map(|a| a.route.to_string()).collect();
            out.note = format!(
                "no route opened ({}): the login with the new key is not proven; the old key stays, the new one is installed (command {})",
                tried.join(", "),
                installed.command_id
            );
            return out;
        }
    };
    match verdict {
        (route, Some(true)) => {
            out.proven = true;
            tracing::info!(instance = %instance.id, %route, "the new key logs in");
        }
        (route, refused) => {
            let why = match refused {
                Some(_) => "sshd refused the new key",
                None => "the login did not finish",
            };
            out.note = format!(
                "{why} (over {route}): the old key stays; the new one is installed (command {}), `ec2-broker key revoke` removes it",
                installed.command_id
            );
            return out;
        }
    }
    match place::revoke(aws, &instance.id, user, &keys.old_fingerprint, false).await {
        Ok(revoked) => {
            out.note = match revoked.removed {
                0 => format!("the old key was not there (command {})", revoked.command_id),
                n => format!("removed {n} line(s) of the old key (command {})", revoked.command_id),
            };
            // Nothing left to remove counts as removed.
            out.old_removed = true;
        }
        Err(e) => {
            out.note = format!("new key proven, removing the old one failed: {}", words(&e));
        }
    }
    out
}

/// The summary table.
pub(crate) fn table(keys: &Keys, dry_run: bool, results: &[HostOutcome]) -> String {
    let mut out = format!(
        "{} {} -> {}\n",
        if dry_run { "plan (no --yes, nothing changed):" } else { "rotated:" },
        keys.old_fingerprint,
        keys.new_fingerprint
    );
    let yes_no = |b: bool| {
        if dry_run {
            "-"
        } else if b {
            "yes"
        } else {
            "no"
        }
    };
    let rows: Vec<[String; 6]> = results
        .iter()
        .map(|r| {
            [
                r.host.clone(),
                r.instance.clone().unwrap_or_else(|| "-".into()),
                yes_no(r.installed).into(),
                yes_no(r.proven).into(),
                yes_no(r.old_removed).into(),
                r.note.clone(),
            ]
        })
        .collect();
    let head = ["HOST", "INSTANCE", "INSTALLED", "PROVEN", "OLD REMOVED", "NOTE"];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(head.map(String::from)).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            match i + 1 == row.len() {
                true => line.push_str(cell),
                false => {
                    let _ = write!(line, "{cell:w$}  ", w = widths[i]);
                }
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// The `ec2-broker.key-rotate/1` document.
pub(crate) fn json(keys: &Keys, user: &str, dry_run: bool, results: &[HostOutcome]) -> String {
    let hosts: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "host": r.host,
                "instance": r.instance,
                "installed": r.installed,
                "proven": r.proven,
                "old_removed": r.old_removed,
                "note": r.note,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schema": "ec2-broker.key-rotate/1",
        "dry_run": dry_run,
        "user": user,
        "old_fingerprint": keys.old_fingerprint,
        "new_fingerprint": keys.new_fingerprint,
        "hosts": hosts,
    });
    format!("{doc:#}\n")
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// `ssh-keygen -t ed25519` in `dir`: the private key's path.
    fn keygen(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&path).output();
        assert!(out.unwrap().status.success());
        path
    }

    #[test]
    fn old_keys_read_as_fingerprint_public_or_private_file_and_the_same_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (keygen(dir.path(), "old"), keygen(dir.path(), "new"));
        let by_private = Keys::read(old.to_str().unwrap(), &new).unwrap();
        let pub_file = format!("{}.pub", old.display());
        let by_public = Keys::read(&pub_file, &new).unwrap();
        assert_eq!(by_private.old_fingerprint, by_public.old_fingerprint);
        assert!(is_fingerprint(&by_public.old_fingerprint), "{}", by_public.old_fingerprint);
        let by_fp = Keys::read(&by_public.old_fingerprint, &new).unwrap();
        assert_eq!(by_fp.old_fingerprint, by_public.old_fingerprint);
        assert_eq!(by_fp.new_fingerprint, by_fp.new.fingerprint(), "the .pub is the private key's here");
        assert!(matches!(Keys::read(new.to_str().unwrap(), &new), Err(KeysError::Same(_))));
        let missing = Keys::read(&by_fp.old_fingerprint, &dir.path().join("nope"));
        assert!(matches!(missing, Err(KeysError::Read { .. })));
        assert!(matches!(Keys::read(&pub_file, Path::new(&pub_file)), Err(KeysError::NotAKey { what: "private", .. })));
        let locked = dir.path().join("locked");
        let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "secret", "-f"]).arg(&locked).output();
        assert!(out.unwrap().status.success());
        let refused = Keys::read(&pub_file, &locked);
        assert!(matches!(refused, Err(KeysError::NotAKey { what: "usable private", .. })), "{:?}", refused.err());
    }

    #[test]
    fn the_table_shows_a_dash_in_a_plan_and_yes_or_no_after_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::read(keygen(dir.path(), "old").to_str().unwrap(), &keygen(dir.path(), "new")).unwrap();
        let done = HostOutcome {
            host: "web-1".into(),
            instance: Some("i-1".into()),
            installed: true,
            proven: false,
            old_removed: false,
            note: "refused".into(),
        };
        let text = table(&keys, false, std::slice::from_ref(&done));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "HOST   INSTANCE  INSTALLED  PROVEN  OLD REMOVED  NOTE");
        assert_eq!(lines[2], "web-1  i-1       yes        no      no           refused");
        assert!(!done.done());
        let plan = table(&keys, true, &[HostOutcome { installed: false, ..done }]);
        assert!(plan.starts_with("plan (no --yes, nothing changed):"), "{plan}");
        assert!(plan.lines().nth(2).unwrap().starts_with("web-1  i-1       -          -       -"), "{plan}");
    }
}
