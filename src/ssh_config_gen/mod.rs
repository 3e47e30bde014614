//! What `ssh-config` writes: Host blocks with unique aliases ([`block`]), the marked section of
//! an Include file they live in ([`section`]), the diff shown when it changes ([`diff`]), and
//! whether `~/.ssh/config` includes that file ([`mod@include`]). Pure but for [`key_dir`] (where
//! `proxy` writes keys, from `HOME`): `cmd::ssh_config` writes the file (through
//! [`crate::cache::private_file`]) and `cmd::ls` lists the instances.

pub(crate) mod block;
pub(crate) mod diff;
pub(crate) mod include;
pub(crate) mod section;

/// The section name for these profiles: `default`, or the profiles joined by `,` in the order
/// given (so `--profile a --profile b` and `--profile b --write` each keep their own section).
pub(crate) fn section_name(profiles: &[String]) -> String {
    if profiles.is_empty() { "default".into() } else { profiles.join(",") }
}

/// The directory `proxy` writes pushed keys to, as an absolute path for `IdentityFile`: ssh
/// expands `~` from the password database, the broker from `HOME`, and the two must agree.
/// `None` without a home directory.
pub(crate) fn key_dir() -> Option<String> {
    crate::keys::file::default_dir().map(|d| d.display().to_string())
}
