//! The SSH host key block cloud-init's `keys_to_console` module writes to the console at first
//! boot (`../shared/spec/aws-apis.md` §6.1, §6.2): fingerprint lines through `logger` (so with
//! its prefix), then the `.pub` lines with plain `echo`/`cat` (no prefix). Lines are returned
//! without their `\r\n` ends.

use super::fingerprint::{FingerprintForm, KeyLine};
use crate::civil_time;

/// The separator line around the fingerprints: 61 `#`.
pub const HASH_LINE: &str = "#############################################################";
/// First marker of the fingerprint part.
pub const BEGIN_FINGERPRINTS: &str = "-----BEGIN SSH HOST KEY FINGERPRINTS-----";
/// Last marker of the fingerprint part.
pub const END_FINGERPRINTS: &str = "-----END SSH HOST KEY FINGERPRINTS-----";
/// First marker of the key part.
pub const BEGIN_KEYS: &str = "-----BEGIN SSH HOST KEY KEYS-----";
/// Last marker of the key part.
pub const END_KEYS: &str = "-----END SSH HOST KEY KEYS-----";

/// Which cloud-init printed the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStyle {
    /// cloud-init 21.2 and later on an image whose util-linux `logger -s` prints the syslog
    /// header: `<14>Mon DD HH:MM:SS cloud-init: ` before each fingerprint line, `SHA256:`
    /// fingerprints, and nothing at all when no key is printed.
    CloudInit,
    /// Before 21.2 with OpenSSH before 6.8: the `ec2: ` tag, an empty `ec2: ` line first,
    /// MD5 hex fingerprints, headers even without keys.
    Legacy,
}

/// The block for `keys` (`.pub` lines, printed in the order given, as cloud-init's
/// `/etc/ssh/ssh_host_*key.pub` glob sorts them: ecdsa, ed25519, rsa), logged at `at` (Unix
/// seconds), with `\r\n` line ends as the serial console gives them.
pub fn host_key_block(style: BlockStyle, keys: &[String], at: u64) -> String {
    let mut text = String::new();
    for line in lines(style, keys, at) {
        text.push_str(&line);
        text.push_str("\r\n");
    }
    text
}

/// The block's lines (see [`host_key_block`]).
pub fn lines(style: BlockStyle, keys: &[String], at: u64) -> Vec<String> {
    if style == BlockStyle::CloudInit && keys.is_empty() {
        return Vec::new();
    }
    let (prefix, form) = match style {
        BlockStyle::CloudInit => (format!("<14>{} cloud-init: ", syslog_time(at)), FingerprintForm::Sha256),
        BlockStyle::Legacy => ("ec2: ".to_string(), FingerprintForm::Md5),
    };
    let mut out = Vec::new();
    if style == BlockStyle::Legacy {
        out.push(prefix.clone());
    }
    out.push(format!("{prefix}{HASH_LINE}"));
    out.push(format!("{prefix}{BEGIN_FINGERPRINTS}"));
    out.extend(keys.iter().filter_map(|k| KeyLine::parse(k)).map(|k| format!("{prefix}{}", k.keygen_line(form))));
    out.push(format!("{prefix}{END_FINGERPRINTS}"));
    out.push(format!("{prefix}{HASH_LINE}"));
    out.push(BEGIN_KEYS.to_string());
    out.extend(keys.iter().map(|k| k.trim().to_string()));
    out.push(END_KEYS.to_string());
    out
}

/// A current-style block that a getty's terminal reset cut (spec §6.3): the BEGIN fingerprints
/// marker breaks off mid-line at a reset sequence, the getty's banner and login prompt run into
/// what follows, the fingerprint lines are truncated, the BEGIN keys marker is cut by a
/// clear-screen sequence and the key lines are truncated. Only END markers survive whole, so a
/// parser that follows the spec's rule finds nothing it may trust.
pub(crate) fn cut_lines(keys: &[String], at: u64, banner: &[String]) -> Vec<String> {
    let prefix = format!("<14>{} cloud-init: ", syslog_time(at));
    let mut out = vec![
        format!("{prefix}{HASH_LINE}"),
        // RIS, soft reset, the DEC modes a getty's reset turns off, keypad numeric mode.
        format!("{prefix}{}\x1bc\x1b[!p\x1b[?3;4l\x1b[4l\x1b>", &BEGIN_FINGERPRINTS[..17]),
    ];
    out.extend(banner.iter().cloned());
    let prints: Vec<String> = (keys.iter().filter_map(|k| KeyLine::parse(k)))
        .map(|k| {
            let line = k.keygen_line(FingerprintForm::Sha256);
            // "256 SHA256:" and the first 12 of the 43 base64 characters.
            let cut = line.find("SHA256:").map_or(line.len().min(20), |i| i + 7 + 12);
            line[..cut].to_string()
        })
        .collect();
    // The prompt and the truncated fingerprints run together on one line.
    let mut joined = out.pop().unwrap_or_default();
    for p in &prints {
        joined.push_str(&prefix);
        joined.push_str(p);
    }
    out.push(joined);
    out.push(format!("{prefix}{END_FINGERPRINTS}"));
    out.push(format!("{prefix}{HASH_LINE}"));
    out.push(format!("{}\x1b[H\x1b[2J\x1b[3J", &BEGIN_KEYS[..21]));
    for k in keys {
        // The type and the first half of the base64: never a whole key blob.
        let mut fields = k.split_whitespace();
        let (kind, base64) = (fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
        out.push(format!("{kind} {}", &base64[..base64.len() / 2]));
    }
    out.push(END_KEYS.to_string());
    out
}

/// `Nov 20 09:00:41` (syslog's `%b %e %H:%M:%S`, the day padded with a space).
pub(crate) fn syslog_time(secs: u64) -> String {
    let c = civil_time::from_unix(secs);
    format!("{} {:>2} {:02}:{:02}:{:02}", civil_time::month_abbrev(c.month), c.day, c.hour, c.minute, c.second)
}
