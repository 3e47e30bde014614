//! Key placement: how the short-lived public key reaches the instance. With EC2 Instance Connect
//! (pushed, served by the instance's `AuthorizedKeysCommand` for 60 s), or, where that package
//! is missing, written into the user's `authorized_keys` by a shell script that SSM Run Command
//! runs as root ([`script`], `place_key.sh`). No I/O here: this module renders the script.

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
}

/// The placement script for `user`: appends `public_key` (its type and base64 only, marked
/// `ec2-broker:<expires>`) with an `expiry-time` option where sshd has one, and removes it
/// after `validity` whatever sshd does. `expires` is Unix seconds.
pub(crate) fn script(user: &str, public_key: &str, expires: u64, validity: Duration) -> Result<String, ScriptError> {
    let one_line = |s: &str| !s.is_empty() && !s.chars().any(|c| c == '\0' || c == '\n' || c == '\r');
    if !one_line(user) {
        return Err(ScriptError::NotOneLine { what: "user name" });
    }
    // The comment goes: the marker takes its place.
    let key: Vec<&str> = public_key.split_whitespace().take(2).collect();
    if key.len() != 2 || !one_line(public_key) {
        return Err(ScriptError::NotOneLine { what: "public key" });
    }
    Ok(TEMPLATE
        .replacen("@USER@", &quote(user), 1)
        .replacen("@KEY@", &quote(&key.join(" ")), 1)
        .replacen("@EXPIRES@", &quote(&expires.to_string()), 1)
        .replacen("@VALIDITY@", &quote(&validity.as_secs().to_string()), 1))
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
            assert!(!["@USER@", "@KEY@", "@EXPIRES@", "@VALIDITY@"].iter().any(|p| s.contains(p)), "filled");
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
