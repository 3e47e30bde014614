//! The serial sessions, one slot per instance, and the log of connections to the endpoint.
//!
//! Rules (spec §2.1, §5.1): the key push opens the session; while it is open another push is
//! refused. It ends when its authenticated connection ends, and then pushes stay refused until
//! the teardown (real time) has passed; or, if nothing authenticated before the key expired,
//! at the key's expiry (lab clock), with no teardown. No clock is read here: lab-clock
//! milliseconds and real `Instant`s come in as arguments.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use russh::keys::PublicKey;

use super::{KEY_VALIDITY, SerialConnInfo};
use crate::state::lock;

/// Sessions and connections of the serial endpoint.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    slots: Mutex<BTreeMap<String, Slot>>,
    conns: Mutex<Vec<SerialConnInfo>>,
}

#[derive(Debug)]
enum Slot {
    /// Pushed and not ended.
    Open(Open),
    /// Its connection ended at this real time.
    TearingDown(Instant),
}

#[derive(Debug)]
struct Open {
    /// The pushed key line as sent (parsed when a client offers a key).
    key: String,
    /// Lab-clock milliseconds of the push.
    pushed_ms: u64,
    /// The connection (index in the log) that holds the session now.
    holder: Option<usize>,
    /// The spurious first close already happened for this push.
    spurious_done: bool,
}

impl Open {
    fn expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.pushed_ms) >= millis(KEY_VALIDITY)
    }
}

/// Why a push was refused: the instance has a session, or its teardown is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionLimitExceeded;

/// The outcome of a key check at authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The key opens the session (with `commit`, this connection now holds it).
    Granted,
    /// The key is right, and this connection is to be closed right after authentication
    /// (`spurious_first_close`); the session stays open and unheld.
    Spurious,
}

/// Why a key was refused at authentication (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No open session for the instance.
    NoSession,
    /// Not the pushed key.
    WrongKey,
    /// The pushed key is 60 s old or older (with `key_age`).
    Expired,
    /// Another connection holds the session.
    Busy,
}

/// What `claim` needs to know besides the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimCheck {
    /// Lab-clock milliseconds now.
    pub(crate) now_ms: u64,
    /// `SerialFaults::key_age`.
    pub(crate) key_age: Duration,
    /// `SerialFaults::spurious_first_close`.
    pub(crate) spurious_first_close: bool,
    /// Take the session (after the signature checked out), or only look (a key offered
    /// without a signature).
    pub(crate) commit: bool,
}

impl Registry {
    /// `SendSerialConsoleSSHPublicKey` after validation: opens a session holding `key`.
    pub(crate) fn push(
        &self,
        instance: &str,
        key: &str,
        now_ms: u64,
        now: Instant,
        teardown: Duration,
    ) -> Result<(), SessionLimitExceeded> {
        let mut slots = lock(&self.slots);
        match slots.get(instance) {
            Some(Slot::Open(o)) if o.holder.is_some() || !o.expired(now_ms) => return Err(SessionLimitExceeded),
            Some(Slot::TearingDown(at)) if now.saturating_duration_since(*at) < teardown => {
                return Err(SessionLimitExceeded);
            }
            _ => {}
        }
        let open = Open { key: key.to_string(), pushed_ms: now_ms, holder: None, spurious_done: false };
        slots.insert(instance.to_string(), Slot::Open(open));
        Ok(())
    }

    /// Checks `offered` against the instance's session for connection `conn`; with
    /// `check.commit`, a granted claim makes `conn` the holder.
    pub(crate) fn claim(
        &self,
        instance: &str,
        offered: &PublicKey,
        conn: usize,
        check: ClaimCheck,
    ) -> Result<Claim, Refusal> {
        let mut slots = lock(&self.slots);
        let Some(Slot::Open(open)) = slots.get_mut(instance) else {
            return Err(Refusal::NoSession);
        };
        let pushed = PublicKey::from_openssh(open.key.trim()).ok();
        if pushed.is_none_or(|k| k.key_data() != offered.key_data()) {
            return Err(Refusal::WrongKey);
        }
        let age = check.now_ms.saturating_sub(open.pushed_ms).saturating_add(millis(check.key_age));
        if age >= millis(KEY_VALIDITY) {
            return Err(Refusal::Expired);
        }
        if open.holder.is_some_and(|h| h != conn) {
            return Err(Refusal::Busy);
        }
        if check.spurious_first_close && !open.spurious_done {
            if check.commit {
                open.spurious_done = true;
            }
            return Ok(Claim::Spurious);
        }
        if check.commit {
            open.holder = Some(conn);
        }
        Ok(Claim::Granted)
    }

    /// Connection `conn` ended: if it held a session, that session ends and its teardown starts
    /// at `now`.
    pub(crate) fn release(&self, conn: usize, now: Instant) {
        for slot in lock(&self.slots).values_mut() {
            if matches!(slot, Slot::Open(o) if o.holder == Some(conn)) {
                *slot = Slot::TearingDown(now);
            }
        }
    }

    /// Logs a new connection; returns its index.
    pub(crate) fn connected(&self) -> usize {
        let mut conns = lock(&self.conns);
        conns.push(SerialConnInfo::default());
        conns.len() - 1
    }

    /// Changes one connection's record.
    pub(crate) fn update(&self, conn: usize, f: impl FnOnce(&mut SerialConnInfo)) {
        if let Some(c) = lock(&self.conns).get_mut(conn) {
            f(c);
        }
    }

    /// Every connection so far, oldest first.
    pub(crate) fn infos(&self) -> Vec<SerialConnInfo> {
        lock(&self.conns).clone()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use russh::keys::{Algorithm, PrivateKey};

    use super::*;

    const I: &str = "i-0123456789abcdef0";
    const T0: u64 = 1_800_000_000_000;

    fn key() -> (String, PublicKey) {
        let k = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("key generation");
        (k.public_key().to_openssh().expect("encoding"), k.public_key().clone())
    }

    fn check(now_ms: u64, commit: bool) -> ClaimCheck {
        ClaimCheck { now_ms, key_age: Duration::ZERO, spurious_first_close: false, commit }
    }

    #[test]
    fn a_push_opens_a_session_that_refuses_another_push_until_the_key_expires() {
        let r = Registry::default();
        let (line, _) = key();
        let t = Instant::now();
        assert_eq!(r.push(I, &line, T0, t, TEARDOWN_FOR_TESTS), Ok(()));
        assert_eq!(r.push(I, &line, T0 + 59_999, t, TEARDOWN_FOR_TESTS), Err(SessionLimitExceeded));
        // Nobody connected: the session ends with the key, without teardown.
        assert_eq!(r.push(I, &line, T0 + 60_000, t, TEARDOWN_FOR_TESTS), Ok(()));
        assert_eq!(r.push("i-0fedcba9876543210", &line, T0, t, TEARDOWN_FOR_TESTS), Ok(()));
    }

    const TEARDOWN_FOR_TESTS: Duration = Duration::from_secs(2);

    #[test]
    fn one_holder_at_a_time_and_teardown_after_it_leaves() {
        let r = Registry::default();
        let (line, public) = key();
        let t = Instant::now();
        r.push(I, &line, T0, t, TEARDOWN_FOR_TESTS).unwrap();
        assert_eq!(r.claim(I, &public, 0, check(T0 + 1, false)), Ok(Claim::Granted));
        assert_eq!(r.claim(I, &public, 0, check(T0 + 1, true)), Ok(Claim::Granted));
        assert_eq!(r.claim(I, &public, 1, check(T0 + 2, true)), Err(Refusal::Busy));
        // Held: the session outlives its key.
        assert_eq!(r.push(I, &line, T0 + 120_000, t, TEARDOWN_FOR_TESTS), Err(SessionLimitExceeded));
        r.release(1, t); // Not the holder: nothing happens.
        assert_eq!(r.claim(I, &public, 1, check(T0 + 3, true)), Err(Refusal::Busy));
        r.release(0, t);
        assert_eq!(r.claim(I, &public, 1, check(T0 + 4, true)), Err(Refusal::NoSession));
        let during = t + Duration::from_millis(1999);
        assert_eq!(r.push(I, &line, T0 + 120_000, during, TEARDOWN_FOR_TESTS), Err(SessionLimitExceeded));
        assert_eq!(r.push(I, &line, T0 + 120_000, t + TEARDOWN_FOR_TESTS, TEARDOWN_FOR_TESTS), Ok(()));
    }

    #[test]
    fn wrong_or_old_keys_are_refused() {
        let r = Registry::default();
        let (line, public) = key();
        let (_, other) = key();
        let t = Instant::now();
        assert_eq!(r.claim(I, &public, 0, check(T0, true)), Err(Refusal::NoSession));
        r.push(I, &line, T0, t, TEARDOWN_FOR_TESTS).unwrap();
        assert_eq!(r.claim(I, &other, 0, check(T0, true)), Err(Refusal::WrongKey));
        assert_eq!(r.claim(I, &public, 0, check(T0 + 60_000, true)), Err(Refusal::Expired));
        let late = ClaimCheck { key_age: Duration::from_secs(61), ..check(T0, true) };
        assert_eq!(r.claim(I, &public, 0, late), Err(Refusal::Expired));
        assert_eq!(r.claim(I, &public, 0, check(T0 + 59_999, true)), Ok(Claim::Granted));
    }

    #[test]
    fn the_spurious_close_happens_once_per_push_and_keeps_the_session() {
        let r = Registry::default();
        let (line, public) = key();
        let t = Instant::now();
        r.push(I, &line, T0, t, TEARDOWN_FOR_TESTS).unwrap();
        let spurious = |commit| ClaimCheck { spurious_first_close: true, ..check(T0 + 10, commit) };
        assert_eq!(r.claim(I, &public, 0, spurious(false)), Ok(Claim::Spurious));
        assert_eq!(r.claim(I, &public, 0, spurious(true)), Ok(Claim::Spurious));
        r.release(0, t); // Held by nobody: the session stays open.
        assert_eq!(r.claim(I, &public, 1, spurious(true)), Ok(Claim::Granted));
        r.release(1, t);
        r.push(I, &line, T0, t + TEARDOWN_FOR_TESTS, TEARDOWN_FOR_TESTS).unwrap();
        assert_eq!(r.claim(I, &public, 2, spurious(true)), Ok(Claim::Spurious), "again after a new push");
    }

    #[test]
    fn connections_are_logged_in_order() {
        let r = Registry::default();
        assert_eq!((r.connected(), r.connected()), (0, 1));
        r.update(1, |c| c.user = Some("u".into()));
        r.update(7, |c| c.user = Some("nobody".into()));
        assert_eq!(
            r.infos(),
            vec![SerialConnInfo::default(), SerialConnInfo { user: Some("u".into()), ..Default::default() }]
        );
    }
}
