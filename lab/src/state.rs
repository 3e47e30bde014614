//! Shared lab state: pushed keys, the clock tests can advance, fault knobs, and the request log.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::inventory::Inventory;

/// A key pushed with `SendSSHPublicKey`.
#[derive(Debug, Clone)]
pub struct PushedKey {
    /// Instance id.
    pub instance: String,
    /// OS user.
    pub user: String,
    /// The public key line.
    pub key: String,
    /// Lab-clock time (Unix seconds) after which it is no longer served.
    pub expires: u64,
    /// Request id the push returned.
    pub request_id: String,
}

/// One API call the lab answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `ec2`, `ec2-instance-connect`, `imds`.
    pub service: String,
    /// Operation or path.
    pub operation: String,
    /// HTTP status returned.
    pub status: u16,
}

/// Fault knobs for the API doubles.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer this many of the next calls with a throttling error.
    pub throttle_next: u32,
    /// Answer this many of the next calls with a 500 server error.
    pub fail_next: u32,
    /// Limit `fail_next` to calls of this operation (e.g. `SendSSHPublicKey`).
    pub fail_only: Option<String>,
    /// Answer every call with 503 (the API is down).
    pub down: bool,
    /// Delay every API answer by this much.
    pub latency: Duration,
    /// Make DescribeInstances return at most this many instances per page.
    pub page_size: Option<usize>,
}

/// Everything the doubles share.
#[derive(Debug)]
pub struct State {
    /// The instances.
    pub inventory: Inventory,
    pub(crate) keys: Mutex<Vec<PushedKey>>,
    pub(crate) clock_offset: Mutex<Duration>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) log: Mutex<Vec<ApiCall>>,
    pub(crate) counter: Mutex<u64>,
}

impl State {
    pub(crate) fn new(inventory: Inventory) -> Self {
        State {
            inventory,
            keys: Mutex::default(),
            clock_offset: Mutex::default(),
            faults: Mutex::default(),
            log: Mutex::default(),
            counter: Mutex::default(),
        }
    }

    /// The lab clock: real time plus what tests advanced it by (Unix seconds).
    pub fn now(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (real + *lock(&self.clock_offset)).as_secs()
    }

    /// Moves the lab clock forward (pushed keys expire by it).
    pub fn advance(&self, by: Duration) {
        *lock(&self.clock_offset) += by;
    }

    /// A fresh id-like string (`prefix` + counter).
    pub fn next_id(&self, prefix: &str) -> String {
        let mut c = lock(&self.counter);
        *c += 1;
        format!("{prefix}{:08x}-lab0-4000-8000-{:012x}", *c, *c)
    }

    /// Stores a key as `SendSSHPublicKey` does: served by the instance's IMDS for 60 lab seconds.
    /// Returns the request id.
    pub fn push_key(&self, instance: &str, user: &str, key: &str) -> String {
        let request_id = self.next_id("");
        lock(&self.keys).push(PushedKey {
            instance: instance.into(),
            user: user.into(),
            key: key.into(),
            expires: self.now() + crate::keys_blob::KEY_VALIDITY_SECS,
            request_id: request_id.clone(),
        });
        request_id
    }

    /// Keys currently served for `instance`/`user`.
    pub fn active_keys(&self, instance: &str, user: &str) -> Vec<PushedKey> {
        let now = self.now();
        lock(&self.keys)
            .iter()
            .filter(|k| k.instance == instance && k.user == user && k.expires > now)
            .cloned()
            .collect()
    }

    /// Every key ever pushed.
    pub fn pushed_keys(&self) -> Vec<PushedKey> {
        lock(&self.keys).clone()
    }

    pub(crate) fn record(&self, service: &str, operation: &str, status: u16) {
        lock(&self.log).push(ApiCall { service: service.into(), operation: operation.into(), status });
    }

    /// The request log so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        lock(&self.log).clone()
    }

    /// Changes the fault knobs.
    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.faults));
    }

    pub(crate) fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        lock(&self.faults)
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the lab's state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
