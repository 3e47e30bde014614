//! Keys pushed with Instance Connect lately (sans-IO), so a burst of connections to one host
//! (Ansible, `git` over ssh, a shell loop) pushes once and reuses the key while it is surely
//! still valid on the instance. Every decision takes `now` (Unix seconds) from the caller.
//!
//! A record says: this key (by fingerprint) was pushed at `pushed_at` for this account (Region
//! and profile), instance, OS user and route. [`Pushes::decide`] allows reuse only when all of
//! them match and the push is at most [`REUSE_SECS`] old; anything else, or a clock that went
//! backwards, means a fresh push. A refused login forgets the record ([`Pushes::forget`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file in the cache directory (`~/.cache/ec2-broker`) that holds the records.
pub(crate) const FILE_NAME: &str = "pushes.json";

/// How long after its push a key is reused. Instance Connect keeps a pushed key for 60 s
/// (`keys::KEY_VALIDITY_SECS`), but what must fit inside those 60 s is the *authentication* of
/// the last connection that reuses it: ssh's start after our decision (host-key check, a slow
/// ProxyCommand route such as Session Manager, which may take several seconds), plus clock
/// granularity (whole seconds here, so up to 1 s lost) and any skew between this machine's
/// clock and the instance's. 40 s leaves 20 s for all of that; a reused key that still expired
/// costs one refused login, which forgets the record so the next connection pushes again.
pub(crate) const REUSE_SECS: u64 = 40;
/// How long a record is kept at all: past the key's validity (Instance Connect's 60 s, the same
/// as `keys::KEY_VALIDITY_SECS`; `cache` does not depend on `keys`) it can never be reused.
const KEEP_SECS: u64 = 60;
// The margin: at least 20 s of the pushed key's validity left for ssh's authentication.
const _: () = assert!(KEEP_SECS - REUSE_SECS >= 20);
/// Records kept at most (oldest dropped first).
const MAX_ENTRIES: usize = 200;

/// The account a record belongs to: Region and profile, as `REGION|PROFILE`.
pub(crate) fn account(region: &str, profile: Option<&str>) -> String {
    format!("{region}|{}", profile.unwrap_or(""))
}

/// One push, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Push {
    /// Region and profile ([`account`]).
    pub account: String,
    /// The instance id.
    pub instance: String,
    /// The OS user the key was pushed for.
    pub user: String,
    /// The route the connection used (`direct`, `eice`, `ssm`).
    pub route: String,
    /// When the push was sent (Unix seconds, taken before the call).
    pub pushed_at: u64,
    /// How many later connections reused it.
    #[serde(default)]
    pub reuses: u32,
    /// When it was last reused (Unix seconds).
    #[serde(default)]
    pub reused_at: Option<u64>,
}

/// What a connection is about to do: the key it holds and where it goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want<'a> {
    /// Region and profile.
    pub account: &'a str,
    /// The instance id.
    pub instance: &'a str,
    /// The OS user.
    pub user: &'a str,
    /// The route it will open first.
    pub route: &'a str,
    /// The fingerprint of the key ssh will offer.
    pub fingerprint: &'a str,
}

/// Push or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The key was pushed `age` seconds ago for exactly this: no push.
    Reuse {
        /// Seconds since the push.
        age: u64,
    },
    /// Push (again): why the record does not do.
    Push(Why),
}

/// Why a key is pushed rather than reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// This key was never pushed (or its record was forgotten after a refused login).
    Unknown,
    /// Pushed with another account or Region.
    OtherAccount,
    /// Pushed to another instance.
    OtherInstance,
    /// Pushed for another OS user.
    OtherUser,
    /// Pushed for a connection over another route.
    OtherRoute,
    /// Pushed more than [`REUSE_SECS`] ago.
    Old {
        /// Seconds since the push.
        age: u64,
    },
    /// Pushed "in the future": the clock went backwards, so the age is unknown.
    ClockBackwards,
}

/// The records, by key fingerprint, as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pushes {
    keys: BTreeMap<String, Push>,
}

impl Pushes {
    /// Reads stored JSON; anything unreadable is no record (a push is only saved, never owed).
    pub(crate) fn parse(text: &str) -> Pushes {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The JSON to store.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the key `want.fingerprint` may be offered without a push at `now`.
    pub(crate) fn decide(&self, want: &Want<'_>, now: u64) -> Decision {
        let Some(p) = self.keys.get(want.fingerprint) else { return Decision::Push(Why::Unknown) };
        if p.account != want.account {
            return Decision::Push(Why::OtherAccount);
        }
        if p.instance != want.instance {
            return Decision::Push(Why::OtherInstance);
        }
        if p.user != want.user {
            return Decision::Push(Why::OtherUser);
        }
        if p.route != want.route {
            return Decision::Push(Why::OtherRoute);
        }
        match now.checked_sub(p.pushed_at) {
            None => Decision::Push(Why::ClockBackwards),
            Some(age) if age > REUSE_SECS => Decision::Push(Why::Old { age }),
            Some(age) => Decision::Reuse { age },
        }
    }

    /// Notes a push of the key `fingerprint` (replacing what was known of it); drops records
    /// past the key's validity, then the oldest beyond [`MAX_ENTRIES`].
    pub(crate) fn record(&mut self, fingerprint: &str, push: Push, now: u64) {
        self.keys.retain(|_, p| now.saturating_sub(p.pushed_at) <= KEEP_SECS && p.pushed_at <= now);
        self.keys.insert(fingerprint.to_string(), push);
        while self.keys.len() > MAX_ENTRIES {
            let oldest = self.keys.iter().min_by_key(|(_, p)| p.pushed_at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.keys.remove(&k),
                None => break,
            };
        }
    }

    /// Notes that a connection reused the key `fingerprint` at `now`.
    pub(crate) fn reused(&mut self, fingerprint: &str, now: u64) {
        if let Some(p) = self.keys.get_mut(fingerprint) {
            p.reuses = p.reuses.saturating_add(1);
            p.reused_at = Some(now);
        }
    }

    /// Forgets the key `fingerprint` (its login was refused); whether it was known.
    pub(crate) fn forget(&mut self, fingerprint: &str) -> bool {
        self.keys.remove(fingerprint).is_some()
    }

    /// The latest push for `instance` and `user` in `account` (for `doctor`).
    pub(crate) fn latest(&self, account: &str, instance: &str, user: &str) -> Option<&Push> {
        self.keys
            .values()
            .filter(|p| p.account == account && p.instance == instance && p.user == user)
            .max_by_key(|p| p.pushed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:aaaa";

    fn push(at: u64) -> Push {
        Push {
            account: "eu-west-1|".into(),
            instance: "i-01".into(),
            user: "ec2-user".into(),
            route: "direct".into(),
            pushed_at: at,
            reuses: 0,
            reused_at: None,
        }
    }

    fn want<'a>() -> Want<'a> {
        Want { account: "eu-west-1|", instance: "i-01", user: "ec2-user", route: "direct", fingerprint: FP }
    }

    // See: issue 19 (bursts)
    #[test]
    fn decision_table() {
        let mut p = Pushes::default();
        p.record(FP, push(1_000), 1_000);
        let p = Pushes::parse(&p.to_json());
        let w = want();
        assert_eq!(p.decide(&w, 1_000), Decision::Reuse { age: 0 });
        assert_eq!(p.decide(&w, 1_000 + REUSE_SECS), Decision::Reuse { age: REUSE_SECS });
        assert_eq!(p.decide(&w, 1_000 + REUSE_SECS + 1), Decision::Push(Why::Old { age: REUSE_SECS + 1 }));
        assert_eq!(p.decide(&w, 999), Decision::Push(Why::ClockBackwards));
        let cases: [(Want<'_>, Why); 5] = [
            (Want { fingerprint: "SHA256:other", ..w }, Why::Unknown),
            (Want { account: "eu-west-1|prod", ..w }, Why::OtherAccount),
            (Want { account: "us-east-1|", ..w }, Why::OtherAccount),
            (Want { instance: "i-02", ..w }, Why::OtherInstance),
            (Want { user: "root", ..w }, Why::OtherUser),
        ];
        for (w, why) in cases {
            assert_eq!(p.decide(&w, 1_010), Decision::Push(why), "{w:?}");
        }
        assert_eq!(p.decide(&Want { route: "ssm", ..w }, 1_010), Decision::Push(Why::OtherRoute));
        // The margin leaves at least 20 s of the pushed key's validity for ssh's authentication.
        assert_eq!(account("eu-west-1", None), w.account);
    }

    // See: issue 19 (bursts)
    #[test]
    fn refused_forgets_reuse_counts_and_old_records_go() {
        let mut p = Pushes::default();
        p.record(FP, push(1_000), 1_000);
        p.reused(FP, 1_005);
        p.reused(FP, 1_007);
        let latest = p.latest("eu-west-1|", "i-01", "ec2-user").unwrap();
        assert_eq!((latest.reuses, latest.reused_at), (2, Some(1_007)));
        assert!(p.latest("eu-west-1|", "i-01", "root").is_none());
        assert!(p.forget(FP) && !p.forget(FP));
        assert_eq!(p.decide(&want(), 1_010), Decision::Push(Why::Unknown), "no reuse after a refused login");
        p.record(FP, push(1_000), 1_000);
        p.record("SHA256:bbbb", push(1_100), 1_100);
        assert_eq!(p.keys.len(), 1, "the record past the key's validity went");
        assert_eq!(Pushes::parse("{"), Pushes::default());
    }

    #[test]
    fn bounded() {
        let mut p = Pushes::default();
        for i in 0..(MAX_ENTRIES as u64 + 5) {
            p.record(&format!("SHA256:{i}"), push(10_000), 10_000);
        }
        assert_eq!(p.keys.len(), MAX_ENTRIES);
    }
}
