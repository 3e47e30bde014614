//! Key placement: how the short-lived public key reaches the instance. With EC2 Instance Connect
//! (pushed, served by the instance's `AuthorizedKeysCommand` for 60 s), or, where that package
//! is missing, written into the user's `authorized_keys` by a shell script that SSM Run Command
//! runs as root (`place_key.sh`). The same script installs a key for good and revokes one
//! (`key install`, `key revoke`, `key rotate`): [`Edit`]. No I/O here: this module renders it.

use std::fmt;
use std::time::Duration;

/// The placement script's template (POSIX sh, runs under dash; `../shared/spec/keys-and-shell.md` §2).
const TEMPLATE: &str = include_str!("place_key.sh");

/// How long a key placed with Run Command stays in `authorized_keys`: the Run Command round trip
/// takes a few seconds (polls back off to 5 s), and ssh authenticates right after; 2 minutes
/// leaves room for a slow agent without leaving a root-placed key around for long.
pub(crate) const PLACED_KEY_VALIDITY: Duration = Duration::from_secs(120);

/// A way to get the key to the instance (`--key-placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `SendSSHPublicKey`: needs the ec2-instance-connect package on the instance.
    InstanceConnect,
    /// `SendCommand` with `AWS-RunShellScript` editing `authorized_keys` as root: needs the SSM
    /// agent online and `ssm:SendCommand`.
    RunCommand,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::InstanceConnect => "instance-connect",
            Placement::RunCommand => "run-command",
        })
    }
}

/// What the script's exit status means (the script documents the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptExit {
    /// The key is in place.
    Placed,
    /// The OS user does not exist.
    NoSuchUser,
    /// sshd reads no `authorized_keys` file for the user (`AuthorizedKeysFile none`).
    NoKeysFile,
    /// The file could not be written.
    EditFailed,
    /// Revoking would have removed the last key line (refused without `force`).
    LastKey,
    /// Any other status (the shell itself failed).
    Other(i32),
}

impl ScriptExit {
    /// The meaning of the script's exit status.
    pub(crate) fn of(code: i32) -> Self {
        match code {
            0 => ScriptExit::Placed,
            3 => ScriptExit::NoSuchUser,
            4 => ScriptExit::NoKeysFile,
            5 => ScriptExit::EditFailed,
            6 => ScriptExit::LastKey,
            other => ScriptExit::Other(other),
        }
    }
}

/// Why a script could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScriptError {
    /// A value would not fit on one line of the script.
    #[error("the {what} for key placement must be one line of printable text, without NUL or line breaks")]
    NotOneLine {
        /// `user name` or `public key`.
        what: &'static str,
    },
    /// Not an OpenSSH SHA-256 fingerprint.
    #[error("{0:?} is not a key fingerprint: give it as ssh-keygen -lf prints it (SHA256: and 43 characters)")]
    Fingerprint(String),
}

/// What a script does to the user's `authorized_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit<'a> {
    /// A short-lived key: marked `ec2-broker:<expires>` (Unix seconds), with an `expiry-time`
    /// option where sshd has one, removed after `validity` whatever sshd does.
    Place {
        /// The public key line.
        public_key: &'a str,
        /// Unix seconds.
        expires: u64,
        /// When the detached removal runs.
        validity: Duration,
    },
    /// A permanent key marked `ec2-broker:installed`, not added when a line that does not
    /// expire holds it already.
    Install {
        /// The public key line.
        public_key: &'a str,
    },
    /// Removes every line whose key has this fingerprint (`SHA256:…`), refusing to remove the
    /// last key line unless `force`.
    Revoke {
        /// `SHA256:` and 43 base64 characters.
        fingerprint: &'a str,
        /// Remove the last key line too.
        force: bool,
    },
    /// Writes nothing: prints the key lines of every `AuthorizedKeysFile` entry sshd reads for
    /// the user, less the broker's short-lived lines (read by [`Listing::parse`]).
    List,
}

/// The placement script for `user`: appends `public_key` (its type and base64 only, marked
/// `ec2-broker:<expires>`) with an `expiry-time` option where sshd has one, and removes it
/// after `validity` whatever sshd does. `expires` is Unix seconds.
#[cfg(test)]
pub(crate) fn script(user: &str, public_key: &str, expires: u64, validity: Duration) -> Result<String, ScriptError> {
    render(user, Edit::Place { public_key, expires, validity })
}

/// The script that makes `edit` to `user`'s `authorized_keys`.
pub(crate) fn render(user: &str, edit: Edit<'_>) -> Result<String, ScriptError> {
    let one_line = |s: &str| !s.is_empty() && !s.chars().any(|c| c == '\0' || c == '\n' || c == '\r');
    if !one_line(user) {
        return Err(ScriptError::NotOneLine { what: "user name" });
    }
    // The comment goes: the marker takes its place.
    let key_of = |public_key: &str| {
        let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
        match key.len() == 2 && one_line(public_key) {
            true => Ok(key.join(" ")),
            false => Err(ScriptError::NotOneLine { what: "public key" }),
        }
    };
    let (mode, key, expires, validity, fingerprint, force) = match edit {
        Edit::Place { public_key, expires, validity } => {
            ("place", key_of(public_key)?, expires, validity.as_secs(), String::new(), false)
        }
        Edit::Install { public_key } => ("install", key_of(public_key)?, 0, 0, String::new(), false),
        Edit::Revoke { fingerprint, force } => {
            if !is_fingerprint(fingerprint) {
                return Err(ScriptError::Fingerprint(fingerprint.to_string()));
            }
            ("revoke", String::new(), 0, 0, fingerprint.to_string(), force)
        }
        Edit::List => ("list", String::new(), 0, 0, String::new(), false),
    };
    let values = [
        ("@USER@", quote(user)),
        ("@MODE@", quote(mode)),
        ("@KEY@", quote(&key)),
        ("@EXPIRES@", quote(&expires.to_string())),
        ("@VALIDITY@", quote(&validity.to_string())),
        ("@FP@", quote(&fingerprint)),
        ("@FORCE@", quote(if force { "yes" } else { "no" })),
    ];
    Ok(fill(TEMPLATE, &values))
}

/// `template` with each placeholder replaced once, in order, searching only after the value
/// before it (a value that contains a placeholder's text stays as it is).
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let (mut out, mut rest) = (String::with_capacity(template.len() + 256), template);
    for (placeholder, value) in values {
        if let Some(at) = rest.find(placeholder) {
            out.push_str(&rest[..at]);
            out.push_str(value);
            rest = &rest[at + placeholder.len()..];
        }
    }
    out.push_str(rest);
    out
}

/// What the script's `list` mode printed: the files read and their key lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    /// Each `AuthorizedKeysFile` entry, and whether it exists.
    pub files: Vec<(String, bool)>,
    /// The key lines as they are in the files (options and comments included), with their file.
    pub lines: Vec<(String, String)>,
    /// How many lines the script left out to stay within Run Command's output limit.
    pub truncated: u32,
}

impl Listing {
    /// Reads the `list` mode's output (`ec2-broker:file PATH`, key lines, `ec2-broker:missing
    /// PATH`, a last `ec2-broker:truncated N`).
    pub(crate) fn parse(stdout: &str) -> Listing {
        let mut out = Listing::default();
        for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(path) = line.strip_prefix("ec2-broker:file ") {
                out.files.push((path.to_string(), true));
            } else if let Some(path) = line.strip_prefix("ec2-broker:missing ") {
                out.files.push((path.to_string(), false));
            } else if let Some(n) = line.strip_prefix("ec2-broker:truncated ") {
                out.truncated = n.trim().parse().unwrap_or(1);
            } else {
                let file = out.files.last().map(|(f, _)| f.clone()).unwrap_or_default();
                out.lines.push((file, line.to_string()));
            }
        }
        out
    }
}

/// Whether `s` is an OpenSSH SHA-256 fingerprint: `SHA256:` and 43 unpadded base64 characters.
pub(crate) fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'))
}

/// `s` as one single-quoted shell word: data, never code.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::Command;

    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH ec2-broker";

    fn dash_available() -> bool {
        Command::new("dash").arg("-c").arg("true").status().is_ok_and(|s| s.success())
    }

    #[test]
    fn the_script_parses_under_dash_never_exits_194_and_stays_small() {
        assert!(!TEMPLATE.contains("exit 194"), "status 194 reboots the instance");
        let users = ["ec2-user", "o'brien", "$(reboot)", "a b;reboot"];
        for user in users {
            let s = script(user, KEY, 1_800_000_000, PLACED_KEY_VALIDITY).unwrap();
            assert!(!s.contains("exit 194"), "{user}");
            assert!(s.len() < 16 * 1024, "{} bytes", s.len());
            assert!(
                !["@USER@", "@MODE@", "@KEY@", "@EXPIRES@", "@VALIDITY@", "@FP@", "@FORCE@"]
                    .iter()
                    .any(|p| s.contains(p)),
                "filled"
            );
            if dash_available() {
                let out = Command::new("dash").arg("-n").arg("-c").arg(&s).output().unwrap();
                assert!(out.status.success(), "{user}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        // The user name is data: it sits inside single quotes, as one word.
        let s = script("o'brien", KEY, 1, PLACED_KEY_VALIDITY).unwrap();
        assert!(s.contains(r"U='o'\''brien'"), "{s}");
    }

    #[test]
    fn values_that_are_not_one_line_are_refused() {
        assert!(script("ec2-user\nreboot", KEY, 1, PLACED_KEY_VALIDITY).is_err());
        assert!(script("", KEY, 1, PLACED_KEY_VALIDITY).is_err());
        assert!(script("ec2-user", "ssh-ed25519", 1, PLACED_KEY_VALIDITY).is_err());
        assert!(script("ec2-user", &format!("{KEY}\nssh-rsa AAAA x"), 1, PLACED_KEY_VALIDITY).is_err());
    }

    #[test]
    fn a_value_holding_a_placeholder_stays_data() {
        let s = script("@MODE@", KEY, 1, PLACED_KEY_VALIDITY).unwrap();
        assert!(s.contains("U='@MODE@'\nMODE='place'\n"), "{s}");
        assert!(render("u", Edit::Revoke { fingerprint: "SHA256:x", force: false }).is_err());
    }

    /// install then revoke for real under dash (the same stand-in sshd): one line however often
    /// it is installed; the last key line stays without force.
    #[test]
    fn install_is_idempotent_and_revoke_keeps_the_last_key() {
        if !dash_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("authorized_keys");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let shim = bin.join("sshd");
        let fake = format!("#!/bin/sh\necho 'authorizedkeysfile {}'\n", keys.display());
        std::fs::write(&shim, fake).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let run = |edit: Edit<'_>| {
            let s = render(user.trim(), edit).unwrap();
            Command::new("dash").arg("-c").arg(&s).env("PATH", &path).output().unwrap()
        };
        let key = |name: &str| {
            let file = dir.path().join(name);
            let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&file).output();
            assert!(out.unwrap().status.success());
            let public = std::fs::read_to_string(file.with_extension("pub")).unwrap();
            let fp = Command::new("ssh-keygen").arg("-lf").arg(file.with_extension("pub")).output().unwrap();
            let fp = String::from_utf8(fp.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string();
            (public.trim().to_string(), fp)
        };
        let (first, first_fp) = key("first");
        let (second, second_fp) = key("second");
        for _ in 0..2 {
            let out = run(Edit::Install { public_key: &first });
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let text = std::fs::read_to_string(&keys).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with(" ec2-broker:installed\n"), "{text}");
        assert_eq!(std::fs::metadata(&keys).unwrap().mode() & 0o777, 0o600);
        let out = run(Edit::Revoke { fingerprint: &first_fp, force: false });
        assert_eq!(ScriptExit::of(out.status.code().unwrap()), ScriptExit::LastKey);
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), text);
        assert!(run(Edit::Install { public_key: &second }).status.success());
        let out = run(Edit::Revoke { fingerprint: &first_fp, force: false });
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 1 of 2 key lines"));
        let left = std::fs::read_to_string(&keys).unwrap();
        assert_eq!(left.lines().count(), 1, "{left}");
        assert!(left.starts_with(&second[..80]), "{left}");
        let out = run(Edit::Revoke { fingerprint: &second_fp, force: true });
        assert!(out.status.success());
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), "");
    }

    /// list mode for real under dash: every AuthorizedKeysFile entry, key lines only, our
    /// short-lived lines left out, nothing written, and output cut below Run Command's 24,000.
    #[test]
    fn list_prints_the_key_lines_writes_nothing_and_stays_within_the_output_limit() {
        if !dash_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("authorized_keys");
        let placed = "expiry-time=\"20990101000000\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaced ec2-broker:4000000000";
        let installed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIInstalled ec2-broker:installed";
        let text = format!("# a comment\n\n{KEY}\r\n{placed}\nfrom=\"10.0.0.0/8\" {installed}\n");
        std::fs::write(&keys, &text).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let shim = bin.join("sshd");
        let fake =
            format!("#!/bin/sh\necho 'authorizedkeysfile {} {}/missing_keys'\n", keys.display(), dir.path().display());
        std::fs::write(&shim, fake).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let list = || {
            let s = render(user.trim(), Edit::List).unwrap();
            let out = Command::new("dash").arg("-c").arg(&s).env("PATH", &path).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let listing = Listing::parse(&list());
        let file = keys.display().to_string();
        let missing = format!("{}/missing_keys", dir.path().display());
        assert_eq!(listing.files, [(file.clone(), true), (missing, false)]);
        let lines: Vec<&str> = listing.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, [KEY.to_string(), format!("from=\"10.0.0.0/8\" {installed}")]);
        assert!(listing.lines.iter().all(|(f, _)| *f == file));
        assert_eq!(listing.truncated, 0);
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), text, "nothing written");
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(entries.len(), 2, "no lock or temporary file: {entries:?}");
        // 300 lines of about 100 characters: cut before 24,000, and said so.
        let many: String = (0..300).map(|i| format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:0>64} k{i}\n")).collect();
        std::fs::write(&keys, many).unwrap();
        let out = list();
        assert!(out.len() < 24_000, "{}", out.len());
        let listing = Listing::parse(&out);
        assert!(listing.truncated > 0 && listing.lines.len() + listing.truncated as usize == 300, "{listing:?}");
        assert!(render("u", Edit::List).unwrap().contains("MODE='list'"));
    }

    #[test]
    fn exit_statuses_read_as_the_script_means_them() {
        assert_eq!(ScriptExit::of(0), ScriptExit::Placed);
        assert_eq!(ScriptExit::of(3), ScriptExit::NoSuchUser);
        assert_eq!(ScriptExit::of(4), ScriptExit::NoKeysFile);
        assert_eq!(ScriptExit::of(5), ScriptExit::EditFailed);
        assert_eq!(ScriptExit::of(2), ScriptExit::Other(2));
    }

    /// Runs the script for real under dash, for the current user, against a stand-in `sshd`
    /// that names a file in a temp dir: the expired marked line goes, ours is appended with the
    /// marker, the foreign key stays, and owner and mode are kept.
    #[test]
    fn a_real_run_keeps_foreign_lines_drops_expired_ones_and_keeps_the_mode() {
        if !dash_available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("authorized_keys");
        let foreign = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForeignForeignForeignForeignForeignForeign0 ami-owner";
        let stale = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStaleStaleStaleStaleStaleStaleStaleStale00 ec2-broker:1000";
        std::fs::write(&keys, format!("{foreign}\n{stale}\n")).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o640)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let shim = bin.join("sshd");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\ncase \"$1\" in -T) echo 'authorizedkeysfile {}';; *) echo 'OpenSSH_9.2p1, OpenSSL' >&2;; esac\n",
                keys.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // A 1 s validity: the detached removal runs in 3 s, after this test has looked.
        let s = script(user.trim(), KEY, now + 60, Duration::from_secs(1)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new("dash").arg("-c").arg(&s).env("PATH", &path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&keys).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], foreign);
        assert!(lines[1].starts_with("expiry-time=\""), "{text}");
        assert!(
            lines[1].ends_with(&format!("AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH ec2-broker:{}", now + 60))
        );
        assert_eq!(std::fs::metadata(&keys).unwrap().mode() & 0o777, 0o640);
        // Two placements at once (flock): neither line is lost.
        let runs: Vec<_> = ["AAAAC3NzaC1lZDI1NTE5AAAAIFirstFirstFirst", "AAAAC3NzaC1lZDI1NTE5AAAAISecondSecond"]
            .iter()
            .map(|blob| {
                let s = script(user.trim(), &format!("ssh-ed25519 {blob}"), now + 60, Duration::from_secs(1)).unwrap();
                Command::new("dash").arg("-c").arg(s).env("PATH", &path).spawn().unwrap()
            })
            .collect();
        for mut run in runs {
            assert!(run.wait().unwrap().success());
        }
        let both = std::fs::read_to_string(&keys).unwrap();
        assert!(both.contains("FirstFirstFirst") && both.contains("SecondSecond"), "{both}");
        std::fs::write(&keys, &text).unwrap();
        // An unknown user: a distinct status, the file untouched.
        let s = script("no-such-user-ec2b", KEY, now + 60, Duration::from_secs(1)).unwrap();
        let out = Command::new("dash").arg("-c").arg(&s).output().unwrap();
        assert_eq!(ScriptExit::of(out.status.code().unwrap_or(-1)), ScriptExit::NoSuchUser);
        assert!(String::from_utf8_lossy(&out.stderr).contains("no user no-such-user-ec2b"));
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), text);
    }
}
