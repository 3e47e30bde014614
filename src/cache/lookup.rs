//! Instance lookups remembered for a few minutes (sans-IO), so a warm `proxy` makes no
//! DescribeInstances call: only running instances that resolved unambiguously are kept, and an
//! entry is dropped as soon as a connection through it fails (the instance may have moved).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::target::instance::Instance;

/// How long a lookup is reused.
pub(crate) const TTL_SECS: u64 = 300;
/// Entries kept at most.
const MAX_ENTRIES: usize = 500;

/// The cache as stored (JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LookupCache {
    entries: BTreeMap<String, (u64, Instance)>,
}

/// The cache key: Region, profile and what the user asked for.
pub(crate) fn key(region: &str, profile: Option<&str>, target: &str) -> String {
    format!("{region}|{}|{target}", profile.unwrap_or(""))
}

impl LookupCache {
    /// Reads stored JSON; anything unreadable is an empty cache.
    pub(crate) fn parse(text: &str) -> LookupCache {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The JSON to store.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A lookup younger than [`TTL_SECS`].
    pub(crate) fn get(&self, key: &str, now: u64) -> Option<&Instance> {
        self.entries.get(key).filter(|(at, _)| now.saturating_sub(*at) < TTL_SECS).map(|(_, i)| i)
    }

    /// Keeps a lookup (dropping expired and surplus entries).
    pub(crate) fn put(&mut self, key: &str, instance: Instance, now: u64) {
        self.entries.retain(|_, (at, _)| now.saturating_sub(*at) < TTL_SECS);
        self.entries.insert(key.to_string(), (now, instance));
        while self.entries.len() > MAX_ENTRIES {
            let oldest = self.entries.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
    }

    /// Every cached instance, expired or not (for shell completion, where an old name is
    /// still a fair suggestion).
    pub(crate) fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.entries.values().map(|(_, i)| i)
    }

    /// Forgets a lookup; true if there was one.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::instance::InstanceState;

    #[test]
    fn expires_round_trips_and_forgets() {
        let mut inst = Instance::new("i-0a1b2c3d4e5f60718", InstanceState::Running);
        inst.private_ip = Some("10.0.1.5".parse().unwrap());
        let k = key("eu-west-1", None, "Name=web-1");
        let mut c = LookupCache::default();
        c.put(&k, inst.clone(), 1_000);
        let c2 = LookupCache::parse(&c.to_json());
        assert_eq!(c2.get(&k, 1_000 + TTL_SECS - 1), Some(&inst));
        assert_eq!(c2.get(&k, 1_000 + TTL_SECS), None);
        assert_eq!(c2.get(&key("eu-west-1", Some("prod"), "Name=web-1"), 1_000), None, "another profile");
        let mut c3 = c2.clone();
        assert!(c3.remove(&k) && !c3.remove(&k));
        assert!(LookupCache::parse("{").get(&k, 0).is_none());
    }
}
