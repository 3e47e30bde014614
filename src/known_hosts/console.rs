//! The host-key block an EC2 instance prints to its console at first boot (cloud-init's
//! `keys_to_console`, `../shared/spec/aws-apis.md` §6) (sans-IO).
//!
//! The parse rule of spec §6.3, which covers every variant seen: find the marker text anywhere
//! in a line (ignoring the `<14>date cloud-init:` or `ec2:` prefix before it), accept only
//! well-formed fingerprint or key lines between BEGIN and END, take only the **first** complete
//! block (anyone with root can print another later), and prefer the full keys over the
//! fingerprints. A block cut by a terminal reset or never ended does not count.

use russh::keys::{HashAlg, PublicKey};

const FP_BEGIN: &str = "-----BEGIN SSH HOST KEY FINGERPRINTS-----";
const FP_END: &str = "-----END SSH HOST KEY FINGERPRINTS-----";
const KEYS_BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const KEYS_END: &str = "-----END SSH HOST KEY KEYS-----";

/// One `ssh-keygen -l` line of the fingerprints block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleFingerprint {
    /// `RSA`, `ECDSA`, `ED25519`, `DSA`.
    pub key_type: String,
    /// `SHA256:…` or, from OpenSSH before 6.8, `MD5:aa:bb:…` (normalised with the prefix).
    pub fingerprint: String,
}

/// What the first host-key block holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleKeys {
    /// The fingerprints block's lines.
    pub fingerprints: Vec<ConsoleFingerprint>,
    /// The keys block's keys.
    pub keys: Vec<PublicKey>,
}

/// How a host key compares with the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleVerdict {
    /// The console shows this key (or its fingerprint).
    Verified,
    /// The console shows a different key of the same type: someone else's key, or a rotated one.
    Mismatch {
        /// What the console shows for that type.
        console: Vec<String>,
    },
    /// The console shows nothing for this key type (or no block at all).
    Unknown,
}

/// How much `GetConsoleOutput` returns: "only the most recent 64 KB of console output"
/// (`../shared/spec/aws-apis.md`, GetConsoleOutput).
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Whether `console` fills the whole window `GetConsoleOutput` returns, so that older lines,
/// perhaps the first boot's host-key block, were cut off: the first block left in it may then
/// have been printed later, by anyone with root on the instance. (Lossy UTF-8 decoding only
/// lengthens the text, so a truncated output is never missed.)
pub fn truncated(console: &str) -> bool {
    console.len() >= OUTPUT_LIMIT
}

/// Finds the first complete block; `None` when there is none.
pub fn find(console: &str) -> Option<ConsoleKeys> {
    // Only the lines from the first marker's on are split: a boot log is mostly other text.
    let first = [FP_BEGIN, KEYS_BEGIN].iter().filter_map(|m| console.find(m)).min()?;
    let from = console[..first].rfind('\n').map_or(0, |i| i + 1);
    let lines: Vec<&str> = console[from..].split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let fingerprints = section(&lines, FP_BEGIN, FP_END)
        .map(|body| body.iter().filter_map(|l| fingerprint_line(l)).collect::<Vec<_>>())
        .unwrap_or_default();
    let keys =
        section(&lines, KEYS_BEGIN, KEYS_END).map(|body| body.iter().filter_map(|l| key_line(l)).collect::<Vec<_>>());
    let keys = keys.unwrap_or_default();
    (!fingerprints.is_empty() || !keys.is_empty()).then_some(ConsoleKeys { fingerprints, keys })
}

/// Compares `key` with what the console shows.
pub fn verify(console: &ConsoleKeys, key: &PublicKey) -> ConsoleVerdict {
    let algorithm = key.algorithm();
    let same_type: Vec<&PublicKey> = console.keys.iter().filter(|k| k.algorithm() == algorithm).collect();
    if !same_type.is_empty() {
        return match same_type.iter().any(|k| k.key_data() == key.key_data()) {
            true => ConsoleVerdict::Verified,
            false => ConsoleVerdict::Mismatch {
                console: same_type.iter().map(|k| k.fingerprint(HashAlg::Sha256).to_string()).collect(),
            },
        };
    }
    let label = type_label(algorithm.as_str());
    let printed: Vec<&ConsoleFingerprint> =
        console.fingerprints.iter().filter(|f| Some(f.key_type.as_str()) == label).collect();
    if printed.is_empty() {
        return ConsoleVerdict::Unknown;
    }
    let ours = [key.fingerprint(HashAlg::Sha256).to_string(), md5_fingerprint(key)];
    match printed.iter().any(|f| ours.contains(&f.fingerprint)) {
        true => ConsoleVerdict::Verified,
        false => ConsoleVerdict::Mismatch { console: printed.iter().map(|f| f.fingerprint.clone()).collect() },
    }
}

/// `MD5:aa:bb:…` as `ssh-keygen -l -E md5` prints it.
pub fn md5_fingerprint(key: &PublicKey) -> String {
    let blob = key.to_bytes().unwrap_or_default();
    let digest = md5::compute(blob);
    let hex: Vec<String> = digest.0.iter().map(|b| format!("{b:02x}")).collect();
    format!("MD5:{}", hex.join(":"))
}

/// The console's type label for an algorithm name.
fn type_label(algorithm: &str) -> Option<&'static str> {
    match algorithm {
        "ssh-ed25519" => Some("ED25519"),
        "ssh-rsa" => Some("RSA"),
        "ssh-dss" => Some("DSA"),
        a if a.starts_with("ecdsa-sha2-") => Some("ECDSA"),
        _ => None,
    }
}

/// The lines strictly between the first line containing `begin` and the next containing `end`.
fn section<'a>(lines: &[&'a str], begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let start = lines.iter().position(|l| l.contains(begin))?;
    let stop = lines[start + 1..].iter().position(|l| l.contains(end))? + start + 1;
    // A second BEGIN before the END means the first was cut: nothing here is trustworthy.
    if lines[start + 1..stop].iter().any(|l| l.contains(begin)) {
        return None;
    }
    Some(lines[start + 1..stop].to_vec())
}

/// `… <bits> <fingerprint> <comment…> (<TYPE>)` anywhere in the line.
fn fingerprint_line(line: &str) -> Option<ConsoleFingerprint> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let last = *tokens.last()?;
    let key_type = last.strip_prefix('(')?.strip_suffix(')')?;
    if !matches!(key_type, "RSA" | "ECDSA" | "ED25519" | "DSA") {
        return None;
    }
    let at = tokens.iter().position(|t| sha256_form(t) || md5_form(t))?;
    if at == 0 || !tokens[at - 1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fp = tokens[at];
    let fingerprint = match (fp.starts_with("SHA256:"), fp.starts_with("MD5:")) {
        (true, _) | (_, true) => fp.to_string(),
        _ => format!("MD5:{fp}"),
    };
    Some(ConsoleFingerprint { key_type: key_type.to_string(), fingerprint })
}

fn sha256_form(t: &str) -> bool {
    t.strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'))
}

fn md5_form(t: &str) -> bool {
    let hex = t.strip_prefix("MD5:").unwrap_or(t);
    hex.len() == 47 && hex.split(':').all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// `<type> <base64> [comment]` anywhere in the line.
fn key_line(line: &str) -> Option<PublicKey> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let at = tokens.iter().position(|t| t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-"))?;
    let blob = tokens.get(at + 1)?;
    PublicKey::from_openssh(&format!("{} {blob}", tokens[at])).ok()
}

#[cfg(test)]
mod truncation_tests {
    use super::*;

    // See: issue 14 (a block found after a truncation must be said to be weaker evidence).
    #[test]
    fn a_full_window_is_truncated() {
        assert!(!truncated("short boot log"));
        assert!(!truncated(&"x".repeat(OUTPUT_LIMIT - 1)));
        assert!(truncated(&"x".repeat(OUTPUT_LIMIT)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMvfKxBYnNctRhy0eWtanhLuI4lG2M5d5QKsCXzXZ+g1Ulh5ccNUNDZUuaQKVESyJ9kEx4WM9AnndEyVu/dBong=";
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0";

    /// The spec's §6.2 excerpt (values generated with ssh-keygen by the spec's authors).
    fn spec_excerpt() -> String {
        [
            "ci-info: no authorized SSH keys fingerprints found for user ec2-user.",
            "<14>Nov 23 08:31:02 cloud-init: #############################################################",
            "<14>Nov 23 08:31:02 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
            "<14>Nov 23 08:31:02 cloud-init: 256 SHA256:9g6NwKVJFCHhEQ517YLJw+wbYn5aJs7L1q4mEovfyP0 root@ip-10-0-1-23.eu-west-1.compute.internal (ECDSA)",
            "<14>Nov 23 08:31:02 cloud-init: 256 SHA256:hwORPtgHaTd4vZA7giwxGbriCnx3AJDgyvcQ/pdhbMg root@ip-10-0-1-23.eu-west-1.compute.internal (ED25519)",
            "<14>Nov 23 08:31:02 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----",
            "<14>Nov 23 08:31:02 cloud-init: #############################################################",
            "-----BEGIN SSH HOST KEY KEYS-----",
            &format!("{ECDSA} root@ip-10-0-1-23.eu-west-1.compute.internal"),
            &format!("{ED} root@ip-10-0-1-23.eu-west-1.compute.internal"),
            "-----END SSH HOST KEY KEYS-----",
        ]
        .join("\r\n")
    }

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    #[test]
    fn spec_excerpt_verifies_its_own_keys() {
        let found = find(&spec_excerpt()).unwrap();
        assert_eq!(found.keys.len(), 2);
        assert_eq!(found.fingerprints.len(), 2);
        // The spec's printed fingerprints are those of its printed keys.
        for (fp, k) in found.fingerprints.iter().zip(&found.keys) {
            assert_eq!(fp.fingerprint, k.fingerprint(HashAlg::Sha256).to_string());
        }
        assert_eq!(verify(&found, &key(ED)), ConsoleVerdict::Verified);
        let other = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        assert!(matches!(verify(&found, other.public_key()), ConsoleVerdict::Mismatch { .. }));
    }

    #[test]
    fn fingerprints_alone_legacy_md5_and_unknown_types() {
        let k = key(ED);
        let md5 = md5_fingerprint(&k);
        let legacy = format!(
            "ec2: \nec2: #############################################################\nec2: {FP_BEGIN}\n\
             ec2: 256 {} root@host (ED25519)\nec2: {FP_END}\n",
            md5.trim_start_matches("MD5:")
        );
        let found = find(&legacy).unwrap();
        assert_eq!(found.fingerprints[0].fingerprint, md5);
        assert_eq!(verify(&found, &k), ConsoleVerdict::Verified);
        // An RSA key when the console printed only ED25519 (AL2023): unknown, not a mismatch.
        let rsa_less = find(&spec_excerpt()).unwrap();
        let ecdsa_only = ConsoleKeys { keys: vec![], fingerprints: rsa_less.fingerprints[..1].to_vec() };
        assert_eq!(verify(&ecdsa_only, &k), ConsoleVerdict::Unknown);
    }

    #[test]
    fn only_the_first_complete_block_counts() {
        let other = russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let tampered = format!(
            "{}\r\n[   99.1] later\r\n{KEYS_BEGIN}\r\n{}\r\n{KEYS_END}\r\n",
            spec_excerpt(),
            other.public_key().to_openssh().unwrap()
        );
        assert_eq!(verify(&find(&tampered).unwrap(), &key(ED)), ConsoleVerdict::Verified);
        assert!(matches!(verify(&find(&tampered).unwrap(), other.public_key()), ConsoleVerdict::Mismatch { .. }));
        // Cut by a terminal reset: BEGIN, then BEGIN again before any END.
        let cut = format!("\x1bc{KEYS_BEGIN}\r\n{ED}\x1b[2J\r\n{KEYS_BEGIN}\r\n{ED}\r\n{KEYS_END}\r\n");
        assert_eq!(find(&cut), None);
        // Never ended.
        assert_eq!(find(&format!("{KEYS_BEGIN}\n{ED}\n")), None);
        assert_eq!(find("Linux version 6.1\nlogin:"), None);
        // Printk lines inside a block are ignored.
        let noisy = format!("{KEYS_BEGIN}\n[   12.34] eth0: link up\n{ED} c\n{KEYS_END}\n");
        assert_eq!(find(&noisy).unwrap().keys.len(), 1);
    }
}
