//! Reusing a key pushed moments ago (issue 19, bursts): the push records of
//! [`crate::cache::pushes`] kept in the cache directory (`pushes.json`, 0600, replaced
//! atomically). Changes are read-modify-write under an exclusive `flock` on `.pushes.lock`, so
//! that concurrent brokers never lose a "forget" (a refused key must not come back); reads need
//! no lock, the file is only ever replaced whole. A record that cannot be read or written only
//! costs a push: the broker goes on.

use std::path::PathBuf;

use super::Route;
use crate::cache::private_file::{DirPolicy, PrivateDir, PrivateFileError, read_hint};
use crate::cache::pushes::{Decision, FILE_NAME as FILE, Push, Pushes, Want};
use crate::cache::unix_now;
use crate::keys::EphemeralKey;

const LOCK: &str = ".pushes.lock";

/// Where the records live and whose they are.
#[derive(Debug, Clone)]
pub(crate) struct KeyReuse {
    /// The cache directory (`~/.cache/ec2-broker`).
    pub dir: PathBuf,
    /// Region and profile (`REGION|PROFILE`).
    pub account: String,
}

impl KeyReuse {
    /// The records as stored (none when the file is missing or not to be trusted).
    pub(crate) fn read(&self) -> Pushes {
        Pushes::parse(&read_hint(&self.dir.join(FILE)))
    }

    /// Whether `key` may go to `instance` for `user` over `route` without a push at `now`, by
    /// `records` (from [`KeyReuse::read`]).
    pub(crate) fn decide(
        &self,
        records: &Pushes,
        instance: &str,
        user: &str,
        route: Route,
        key: &EphemeralKey,
        now: u64,
    ) -> Decision {
        let (route, fingerprint) = (route.to_string(), key.fingerprint());
        let want = Want { account: &self.account, instance, user, route: &route, fingerprint: &fingerprint };
        records.decide(&want, now)
    }

    /// Notes that `key` was pushed at `pushed_at` for this connection.
    pub(crate) fn pushed(&self, instance: &str, user: &str, route: Route, key: &EphemeralKey, pushed_at: u64) {
        let push = Push {
            account: self.account.clone(),
            instance: instance.to_string(),
            user: user.to_string(),
            route: route.to_string(),
            pushed_at,
            reuses: 0,
            reused_at: None,
        };
        self.update(|p| p.record(&key.fingerprint(), push, unix_now()));
    }

    /// Notes that a connection reused `key` now.
    pub(crate) fn reused(&self, key: &EphemeralKey) {
        self.update(|p| p.reused(&key.fingerprint(), unix_now()));
    }

    /// Forgets `key` (its login looked refused): the next connection pushes a fresh one.
    pub(crate) fn forget(&self, key: &EphemeralKey) {
        self.update(|p| {
            p.forget(&key.fingerprint());
        });
    }

    fn update(&self, change: impl FnOnce(&mut Pushes)) {
        let run = || -> Result<(), PrivateFileError> {
            let dir = PrivateDir::create(&self.dir, DirPolicy::NoOtherWriters)?;
            let lock = dir.open_lock(LOCK)?;
            lock.lock().map_err(PrivateFileError::io("locking", &dir.join(LOCK)))?;
            let mut pushes = Pushes::parse(&dir.read_own(FILE)?.unwrap_or_default());
            change(&mut pushes);
            dir.write_atomic(FILE, pushes.to_json().as_bytes())
        };
        if let Err(e) = run() {
            tracing::warn!(file = %self.dir.join(FILE).display(), "could not update the record of pushed keys: {e}");
        }
    }
}
