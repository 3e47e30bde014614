//! `key import --from HOST`: the keys an instance's `authorized_keys` holds, offered by
//! fingerprint, each checked as [`ImportableKey::parse`] checks a file (weak ones refused with the
//! reason), and the one to import chosen: the only acceptable key, or the one `--fingerprint`
//! names. Pure: the lines come from the placement script's `list` mode (read with Run Command).

use std::fmt::Write as _;

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use sha2::{Digest, Sha256};

use super::public_key::{ImportableKey, KeyKind, KeyRefused};

/// One key found on the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offered {
    /// The file it is in.
    pub(crate) file: String,
    /// The key type as the line names it (`ssh-ed25519`, `ssh-rsa`, `ssh-dss`…).
    pub(crate) key_type: String,
    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub(crate) ssh_fingerprint: String,
    /// The line's comment, made printable (may be empty).
    pub(crate) comment: String,
    /// The key, or why it is not imported.
    pub(crate) verdict: Result<ImportableKey, KeyRefused>,
}

impl Offered {
    /// The fingerprint EC2 would show, for a key it would import.
    pub(crate) fn ec2_fingerprint(&self) -> Option<String> {
        self.verdict.as_ref().ok().map(ImportableKey::ec2_fingerprint)
    }

    /// Whether `fp` names this key: `SHA256:…` (padded or not) or EC2's form.
    fn named_by(&self, fp: &str) -> bool {
        let fp = fp.trim();
        let sha = fp.trim_end_matches('=');
        sha == self.ssh_fingerprint
            || format!("SHA256:{sha}") == self.ssh_fingerprint
            || self.ec2_fingerprint().is_some_and(|e| e.eq_ignore_ascii_case(fp))
    }

    /// One line for a listing: fingerprints, type, comment, file, and a refusal's reason.
    pub(crate) fn describe(&self) -> String {
        let kind = match &self.verdict {
            Ok(k) => match k.kind() {
                KeyKind::Rsa { bits } => format!("RSA {bits}-bit"),
                KeyKind::Ed25519 => "Ed25519".into(),
            },
            Err(_) => self.key_type.clone(),
        };
        let mut out = format!("{} {kind}", self.ssh_fingerprint);
        if let Some(ec2) = self.ec2_fingerprint() {
            let _ = write!(out, " (EC2 fingerprint {ec2})");
        }
        if !self.comment.is_empty() {
            let _ = write!(out, " {:?}", self.comment);
        }
        let _ = write!(out, " in {}", self.file);
        if let Err(why) = &self.verdict {
            let _ = write!(out, ": refused, {why}");
        }
        crate::text::printable(&out).into_owned()
    }
}

/// The keys of `lines` (each `(file, line)` as the list mode printed it), each key once (the first
/// line holding it), lines without a key left out.
pub(crate) fn offered(lines: &[(String, String)]) -> Vec<Offered> {
    let mut out: Vec<Offered> = Vec::new();
    for (file, line) in lines {
        let Some((at, key_type, blob)) = find_key(line) else { continue };
        let ssh_fingerprint = format!("SHA256:{}", Base64::encode_string(&Sha256::digest(&blob)).trim_end_matches('='));
        if out.iter().any(|o| o.ssh_fingerprint == ssh_fingerprint) {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let comment = words.get(at + 2..).map(|c| c.join(" ")).unwrap_or_default();
        let verdict = ImportableKey::parse(format!("{key_type} {}", words[at + 1]).as_bytes());
        out.push(Offered { file: file.clone(), key_type, ssh_fingerprint, comment, verdict });
    }
    out
}

/// The word index, type and blob of the key on an authorized_keys line: the first word followed
/// by base64 whose SSH blob starts with that word (options before it, quoted or not, are skipped).
fn find_key(line: &str) -> Option<(usize, String, Vec<u8>)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).enumerate().find_map(|(i, pair)| {
        let blob = Base64::decode_vec(pair[1]).ok()?;
        let (len, rest) = blob.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        (rest.get(..len)? == pair[0].as_bytes()).then(|| (i, pair[0].to_string(), blob.clone()))
    })
}

/// Why no key was chosen. Each says what to run instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChoiceError {
    /// The files hold no key line.
    #[error("{where_} holds no key: nothing to import; import a key file instead (--public-key FILE)")]
    NoKeys {
        /// `web-1's authorized_keys for ec2-user`.
        where_: String,
    },
    /// Every key is refused.
    #[error("{where_} holds no key EC2 can import safely:\n{list}nothing was imported")]
    NoneAcceptable {
        /// Where.
        where_: String,
        /// The keys, a line each.
        list: String,
    },
    /// Several keys: the user chooses.
    #[error("{where_} holds {count} keys that can be imported:\n{list}choose one: {command} --fingerprint FP")]
    Several {
        /// Where.
        where_: String,
        /// How many acceptable keys.
        count: usize,
        /// The keys, a line each.
        list: String,
        /// The command without `--fingerprint`.
        command: String,
    },
    /// `--fingerprint` names no key there.
    #[error("{where_} holds no key {fingerprint}; it holds:\n{list}give one of these to --fingerprint")]
    NoMatch {
        /// Where.
        where_: String,
        /// What was asked.
        fingerprint: String,
        /// The keys, a line each.
        list: String,
    },
    /// `--fingerprint` names a refused key.
    #[error("{fingerprint} is refused: {why}; nothing was imported")]
    Refused {
        /// What was asked.
        fingerprint: String,
        /// The reason.
        why: KeyRefused,
    },
}

/// The key to import: the one `fingerprint` names, else the only acceptable one. `where_` says
/// where the keys were read, `command` is the command line to repeat with `--fingerprint`.
pub(crate) fn choose<'a>(
    keys: &'a [Offered],
    fingerprint: Option<&str>,
    where_: &str,
    command: &str,
) -> Result<&'a Offered, ChoiceError> {
    let where_ = where_.to_string();
    let list = || keys.iter().map(|k| format!("  {}\n", k.describe())).collect::<String>();
    if keys.is_empty() {
        return Err(ChoiceError::NoKeys { where_ });
    }
    if let Some(fp) = fingerprint {
        return match keys.iter().find(|k| k.named_by(fp)) {
            None => Err(ChoiceError::NoMatch { where_, fingerprint: fp.to_string(), list: list() }),
            Some(Offered { verdict: Err(why), .. }) => {
                Err(ChoiceError::Refused { fingerprint: fp.to_string(), why: why.clone() })
            }
            Some(k) => Ok(k),
        };
    }
    let good: Vec<&Offered> = keys.iter().filter(|k| k.verdict.is_ok()).collect();
    match good.as_slice() {
        [] => Err(ChoiceError::NoneAcceptable { where_, list: list() }),
        [one] => Ok(one),
        many => Err(ChoiceError::Several { where_, count: many.len(), list: list(), command: command.to_string() }),
    }
}

#[cfg(test)]
mod tests;
