//! Host-key blocks read from instance consoles, remembered between audits (sans-IO).
//!
//! cloud-init prints an instance's host keys to its console once, at first boot
//! (`../shared/spec/aws-apis.md` §6), so what `known-hosts audit` read from a console stays true
//! for as long as the instance runs: the next audit need not call `GetConsoleOutput` again, which
//! matters because that call is rate-limited in a real account. An entry is keyed by Region and
//! instance id and holds the instance's launch time; an instance whose launch time changed (it was
//! stopped and started, its console output starts afresh) is read again.
//!
//! What is kept:
//! - a block that was found, with whether the output filled the 64 KiB window (the audit warns
//!   about such a block each time, cached or not);
//! - "no block" only when the console was read at least [`FIRST_BOOT_SECS`] after launch: by then
//!   the first boot is long over and the block will never appear. A younger instance may still be
//!   booting, so it is asked again next time.
//!
//! The file lives in the user's cache directory (0600, written atomically). Whoever can write it
//! can already replace the user's known_hosts, so it grants nothing new; an entry that does not
//! parse is dropped, never trusted in part.

use std::collections::BTreeMap;

use russh::keys::PublicKey;
use serde::{Deserialize, Serialize};

use super::console::{ConsoleFingerprint, ConsoleKeys};

/// How long after launch a console without a host-key block is taken to never show one.
pub(crate) const FIRST_BOOT_SECS: u64 = 3600;
/// Entries kept at most (least recently read dropped first): a 10 000-instance fleet fits, in
/// a file of about 11 MiB.
const MAX_ENTRIES: usize = 20_000;

/// The cache as stored (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConsoleCache {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// The launch time the console was read under (as the API printed it).
    launch: String,
    /// When it was read (Unix seconds).
    read: u64,
    /// The fingerprints block: (type, fingerprint).
    #[serde(default)]
    fingerprints: Vec<(String, String)>,
    /// The keys block, as OpenSSH public key lines.
    #[serde(default)]
    keys: Vec<String>,
    /// The output filled the whole window GetConsoleOutput returns.
    #[serde(default)]
    truncated: bool,
}

/// What an earlier audit read from a console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remembered {
    /// The first host-key block, and whether the output filled the window.
    Block {
        /// The block.
        keys: ConsoleKeys,
        /// The output filled the 64 KiB window.
        truncated: bool,
    },
    /// No block, read long enough after launch that none will come.
    NoBlock,
}

fn key(region: &str, id: &str) -> String {
    format!("{region}|{id}")
}

impl ConsoleCache {
    /// Reads stored JSON; anything unreadable is an empty cache.
    pub(crate) fn parse(text: &str) -> ConsoleCache {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The JSON to store: the [`MAX_ENTRIES`] most recently read entries.
    pub(crate) fn to_json(&self) -> String {
        match self.entries.len() > MAX_ENTRIES {
            true => {
                let mut kept = self.clone();
                kept.trim();
                serde_json::to_string(&kept).unwrap_or_default()
            }
            false => serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// What was read from `id`'s console under the same launch time; `None` when nothing was, the
    /// instance was launched again since, its launch time is unknown, or the entry is damaged.
    pub(crate) fn get(&self, region: &str, id: &str, launch: Option<&str>) -> Option<Remembered> {
        let launch = launch?;
        let entry = self.entries.get(&key(region, id)).filter(|e| e.launch == launch)?;
        if entry.fingerprints.is_empty() && entry.keys.is_empty() {
            return Some(Remembered::NoBlock);
        }
        let keys = entry.keys.iter().map(|k| PublicKey::from_openssh(k).ok()).collect::<Option<Vec<_>>>()?;
        let fingerprints = entry
            .fingerprints
            .iter()
            .map(|(key_type, fingerprint)| ConsoleFingerprint {
                key_type: key_type.clone(),
                fingerprint: fingerprint.clone(),
            })
            .collect();
        Some(Remembered::Block { keys: ConsoleKeys { fingerprints, keys }, truncated: entry.truncated })
    }

    /// Remembers what `id`'s console showed at `now`; returns whether it was kept (see the module
    /// docs for when "no block" is not).
    pub(crate) fn put(
        &mut self,
        region: &str,
        id: &str,
        launch: Option<&str>,
        found: Option<&ConsoleKeys>,
        truncated: bool,
        now: u64,
    ) -> bool {
        let Some(launch) = launch else { return false };
        let entry = match found {
            Some(block) => Entry {
                launch: launch.to_string(),
                read: now,
                fingerprints: block.fingerprints.iter().map(|f| (f.key_type.clone(), f.fingerprint.clone())).collect(),
                keys: block.keys.iter().filter_map(|k| k.to_openssh().ok()).collect(),
                truncated,
            },
            None => {
                let settled = unix_of(launch).is_some_and(|at| now >= at.saturating_add(FIRST_BOOT_SECS));
                if !settled {
                    return false;
                }
                Entry { launch: launch.to_string(), read: now, fingerprints: Vec::new(), keys: Vec::new(), truncated }
            }
        };
        self.entries.insert(key(region, id), entry);
        true
    }

    /// Drops the least recently read entries down to [`MAX_ENTRIES`].
    fn trim(&mut self) {
        let surplus = self.entries.len().saturating_sub(MAX_ENTRIES);
        if surplus == 0 {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self.entries.iter().map(|(k, e)| (e.read, k.clone())).collect();
        by_age.select_nth_unstable(surplus - 1);
        for (_, k) in &by_age[..surplus] {
            self.entries.remove(k);
        }
    }
}

/// Unix seconds of an ISO 8601 UTC time as EC2 prints launch times (`2026-12-06T21:00:00Z`, with
/// or without fractional seconds); `None` for anything else.
fn unix_of(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let rest = &text[19..];
    let zone_ok = rest == "Z"
        || rest
            .strip_prefix('.')
            .and_then(|r| r.strip_suffix('Z'))
            .is_some_and(|f| f.bytes().all(|c| c.is_ascii_digit()));
    if !zone_ok {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil (http://howardhinnant.github.io/date_algorithms.html).
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + (hh * 3600 + mm * 60 + ss) as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0";
    const LAUNCH: &str = "2026-12-06T10:00:00.000Z";

    fn block() -> ConsoleKeys {
        ConsoleKeys {
            fingerprints: vec![ConsoleFingerprint { key_type: "ED25519".into(), fingerprint: "SHA256:abc".into() }],
            keys: vec![PublicKey::from_openssh(KEY).unwrap()],
        }
    }

    #[test]
    fn launch_times_as_ec2_prints_them() {
        assert_eq!(unix_of("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_of("2026-12-06T10:00:00Z"), Some(1_796_551_200));
        assert_eq!(unix_of(LAUNCH), Some(1_796_551_200));
        assert_eq!(unix_of("2000-02-29T23:59:59Z"), Some(951_868_799));
        for bad in [
            "",
            "2026-12-06",
            "2026-12-06T10:00:00",
            "2026-12-06T10:00:00+01:00",
            "2026-13-06T10:00:00Z",
            "2026-12-06T10:00:00.Zx",
            "２026-12-06T10:00:00Z",
        ] {
            assert_eq!(unix_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_block_survives_a_round_trip_and_a_new_launch_forgets_it() {
        let mut cache = ConsoleCache::default();
        assert!(cache.put("eu-west-1", "i-1", Some(LAUNCH), Some(&block()), true, 1_796_551_260));
        let cache = ConsoleCache::parse(&cache.to_json());
        assert_eq!(
            cache.get("eu-west-1", "i-1", Some(LAUNCH)),
            Some(Remembered::Block { keys: block(), truncated: true })
        );
        assert_eq!(cache.get("eu-west-1", "i-1", Some("2026-12-07T10:00:00.000Z")), None, "launched again");
        assert_eq!(cache.get("us-east-1", "i-1", Some(LAUNCH)), None, "another Region");
        assert_eq!(cache.get("eu-west-1", "i-1", None), None, "launch time unknown");
    }

    #[test]
    fn no_block_is_kept_only_once_the_first_boot_is_over() {
        let launched = unix_of(LAUNCH).unwrap();
        let mut cache = ConsoleCache::default();
        assert!(!cache.put("r", "i-1", Some(LAUNCH), None, false, launched + 60), "may still be booting");
        assert_eq!(cache.get("r", "i-1", Some(LAUNCH)), None);
        assert!(!cache.put("r", "i-1", Some("yesterday"), None, false, launched + 86_400), "unreadable launch time");
        assert!(cache.put("r", "i-1", Some(LAUNCH), None, false, launched + FIRST_BOOT_SECS));
        assert_eq!(cache.get("r", "i-1", Some(LAUNCH)), Some(Remembered::NoBlock));
        assert!(!cache.put("r", "i-2", None, Some(&block()), false, launched), "no launch time, nothing kept");
    }

    #[test]
    fn a_damaged_entry_is_dropped_not_trusted_in_part() {
        let text = format!(
            r#"{{"entries":{{"r|i-1":{{"launch":"{LAUNCH}","read":1,"fingerprints":[],"keys":["{KEY}","ssh-ed25519 AAAAnot"]}}}}}}"#
        );
        assert_eq!(ConsoleCache::parse(&text).get("r", "i-1", Some(LAUNCH)), None);
        assert_eq!(ConsoleCache::parse("not json").len(), 0);
    }

    #[test]
    fn the_least_recently_read_entry_goes_first() {
        let mut cache = ConsoleCache::default();
        for i in 0..=MAX_ENTRIES as u64 {
            cache.put("r", &format!("i-{i}"), Some(LAUNCH), Some(&block()), false, 10 + i);
        }
        let cache = ConsoleCache::parse(&cache.to_json());
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(cache.get("r", "i-0", Some(LAUNCH)), None);
        assert!(cache.get("r", &format!("i-{MAX_ENTRIES}"), Some(LAUNCH)).is_some());
    }
}
