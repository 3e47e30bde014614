//! What GetConsoleOutput returns: an instance's serial console text from its first boot, with
//! cloud-init's SSH host key block (`../shared/spec/aws-apis.md` §6) in the form the instance's
//! `console_keys` asks for, or EC2Launch's lines on Windows. Pure text: no I/O and no clock
//! (times come from the instance's `launch_time`). Lines end in `\r\n`, as a serial console's do.
//!
//! - `block`: the fingerprint and key blocks, current (`<14>Mon DD HH:MM:SS cloud-init: `,
//!   `SHA256:`) and legacy (`ec2: `, MD5 hex), and the one a terminal reset cut;
//! - `boot`: the kernel, systemd and cloud-init lines around the block, and the getty's prompt;
//! - `fingerprint`: `ssh-keygen -l` lines from `.pub` lines.

mod block;
mod boot;
mod fingerprint;
#[cfg(test)]
pub(crate) mod tests;

use serde::Deserialize;

pub use block::{BEGIN_FINGERPRINTS, BEGIN_KEYS, BlockStyle, END_FINGERPRINTS, END_KEYS, HASH_LINE, host_key_block};
pub use fingerprint::{FingerprintForm, KeyLine};

use crate::inventory::InstanceSpec;

/// Seconds from power-on to cloud-init's `keys_to_console` (the block's logger timestamp).
const BLOCK_AFTER_SECS: u64 = 9;
/// Seconds from power-on to the forged second block of [`ConsoleKeys::Tampered`].
const FORGED_AFTER_SECS: u64 = 602;

/// What an instance's console output holds about its SSH host keys (inventory `console_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsoleKeys {
    /// Current cloud-init (21.2 and later): the `<14>… cloud-init: ` block with `SHA256:`
    /// fingerprints of the instance's real host keys, then the keys. The default for running
    /// Linux instances.
    CloudInit,
    /// cloud-init before 21.2 with OpenSSH before 6.8: the `ec2: ` block with MD5 hex
    /// fingerprints of the real keys, then the keys.
    Legacy,
    /// No block (the console after a reboot: the block is printed once per instance). The
    /// default for Windows and for instances that are not running.
    #[serde(rename = "none")]
    Absent,
    /// The real block, then later in the log a second complete block with a key that is not
    /// the instance's (spec §6.3: only the first block counts).
    Tampered,
    /// One well-formed block whose keys are not the instance's sshd keys (a rebuilt instance,
    /// or keys rotated after first boot).
    Mismatch,
    /// The real block cut by a getty's terminal reset and garbled (spec §6.3): nothing in it
    /// can be trusted.
    Cut,
}

/// Everything the console text of one instance is made from.
#[derive(Debug, Clone)]
pub struct Console<'a> {
    /// The instance.
    pub instance: &'a InstanceSpec,
    /// The Region (for the host name in key comments).
    pub region: &'a str,
    /// The instance's own host keys as `.pub` lines, in the order cloud-init prints them.
    pub host_keys: &'a [String],
    /// Keys that are not the instance's, for [`ConsoleKeys::Tampered`] and
    /// [`ConsoleKeys::Mismatch`].
    pub foreign_keys: &'a [String],
    /// The launch key pair's public key line (cloud-init reports its fingerprint).
    pub authorized_key: Option<&'a str>,
}

/// The decoded console text (what GetConsoleOutput base64-encodes).
pub fn text(c: &Console<'_>) -> String {
    let inst = c.instance;
    let kind = inst.console_keys();
    let start = crate::civil_time::parse_iso8601(&inst.launch_time).unwrap_or(0);
    if inst.platform.is_some() && kind == ConsoleKeys::Absent {
        return crlf(boot::windows(start));
    }
    let boot = boot::Boot {
        host: inst.host_name(),
        private_ip: inst.private_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        instance_type: &inst.instance_type,
        user: inst.os_users.first().map_or("ec2-user", String::as_str),
        authorized_key: c.authorized_key,
        start,
        legacy: kind == ConsoleKeys::Legacy,
    };
    let at = start + BLOCK_AFTER_SECS;
    let shown = if kind == ConsoleKeys::Mismatch { c.foreign_keys } else { c.host_keys };
    let mut lines = boot.kernel_and_init();
    lines.extend(boot.final_stage());
    match kind {
        ConsoleKeys::CloudInit | ConsoleKeys::Tampered | ConsoleKeys::Mismatch => {
            lines.extend(block::lines(BlockStyle::CloudInit, shown, at));
        }
        ConsoleKeys::Legacy => lines.extend(block::lines(BlockStyle::Legacy, shown, at)),
        ConsoleKeys::Cut => lines.extend(block::cut_lines(shown, at, &boot.banner())),
        ConsoleKeys::Absent => {}
    }
    lines.extend(boot.finished());
    if kind == ConsoleKeys::Tampered {
        lines.extend(boot.later());
        lines.extend(block::lines(BlockStyle::CloudInit, c.foreign_keys, start + FORGED_AFTER_SECS));
    }
    crlf(lines)
}

fn crlf(lines: Vec<String>) -> String {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
    for line in lines {
        text.push_str(&line);
        text.push_str("\r\n");
    }
    text
}
