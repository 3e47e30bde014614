//! Which route worked for an instance lately (sans-IO), so `--route auto` tries it first next
//! time. Entries last [`TTL_SECS`]; a route that stops working is simply replaced by the one that
//! works next. Also how the key got in (issue 17), so the check of Instance Connect's key before
//! ssh gets the route runs once an hour per instance, not on every connection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Route;
use crate::keys::placement::Placement;

/// How long a remembered route is tried first.
pub(crate) const TTL_SECS: u64 = 3600;
/// Entries kept at most (oldest dropped first).
const MAX_ENTRIES: usize = 1000;

/// The remembered routes, as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Memory {
    /// Instance id → the route and when it last worked (Unix seconds).
    routes: BTreeMap<String, (String, u64)>,
    /// Instance id → the key placement that got in and when (absent from older files).
    #[serde(default)]
    placements: BTreeMap<String, (String, u64)>,
}

impl Memory {
    /// Reads stored JSON; anything unreadable is an empty memory (it is only a hint).
    pub(crate) fn parse(text: &str) -> Memory {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The JSON to store.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The route that worked for `id` less than [`TTL_SECS`] before `now`.
    pub(crate) fn remembered(&self, id: &str, now: u64) -> Option<Route> {
        match fresh(&self.routes, id, now)? {
            "direct" => Some(Route::Direct),
            "eice" => Some(Route::Eice),
            "ssm" => Some(Route::Ssm),
            _ => None,
        }
    }

    /// Notes that `route` worked for `id` at `now`; drops expired and surplus entries.
    pub(crate) fn record(&mut self, id: &str, route: Route, now: u64) {
        note(&mut self.routes, id, route.to_string(), now);
    }

    /// The key placement that got into `id` less than [`TTL_SECS`] before `now`.
    pub(crate) fn placement(&self, id: &str, now: u64) -> Option<Placement> {
        match fresh(&self.placements, id, now)? {
            "instance-connect" => Some(Placement::InstanceConnect),
            "run-command" => Some(Placement::RunCommand),
            _ => None,
        }
    }

    /// Notes that `placement` got into `id` at `now` (same limits as routes).
    pub(crate) fn record_placement(&mut self, id: &str, placement: Placement, now: u64) {
        note(&mut self.placements, id, placement.to_string(), now);
    }

    /// Forgets how the key got into `id` (it was refused after all); whether anything was known.
    pub(crate) fn forget_placement(&mut self, id: &str) -> bool {
        self.placements.remove(id).is_some()
    }
}

/// The name noted for `id` less than [`TTL_SECS`] before `now`.
fn fresh<'a>(map: &'a BTreeMap<String, (String, u64)>, id: &str, now: u64) -> Option<&'a str> {
    let (name, at) = map.get(id)?;
    (now.saturating_sub(*at) < TTL_SECS).then_some(name.as_str())
}

/// Notes `name` for `id` at `now`; drops expired entries, then the oldest beyond [`MAX_ENTRIES`].
fn note(map: &mut BTreeMap<String, (String, u64)>, id: &str, name: String, now: u64) {
    map.retain(|_, (_, at)| now.saturating_sub(*at) < TTL_SECS);
    map.insert(id.to_string(), (name, now));
    while map.len() > MAX_ENTRIES {
        let oldest = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

/// `plan` with `first` moved to the front (when it is in the plan at all).
pub(crate) fn first_of(mut plan: Vec<Route>, first: Option<Route>) -> Vec<Route> {
    if let Some(pos) = first.and_then(|r| plan.iter().position(|p| *p == r)) {
        let r = plan.remove(pos);
        plan.insert(0, r);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue 17
    #[test]
    fn remembers_the_placement_for_an_hour() {
        let old = Memory::parse(r#"{"routes":{"i-01":["ssm",1000]}}"#);
        assert_eq!(old.remembered("i-01", 1_000), Some(Route::Ssm), "files without placements still read");
        let mut m = old;
        m.record_placement("i-01", Placement::RunCommand, 1_000);
        let mut m = Memory::parse(&m.to_json());
        assert_eq!(m.placement("i-01", 1_000 + TTL_SECS - 1), Some(Placement::RunCommand));
        assert_eq!(m.placement("i-01", 1_000 + TTL_SECS), None);
        assert!(m.forget_placement("i-01"));
        assert_eq!(m.placement("i-01", 1_000), None);
    }

    #[test]
    fn remembers_for_an_hour_and_survives_a_round_trip() {
        let mut m = Memory::default();
        m.record("i-01", Route::Ssm, 1_000);
        let m = Memory::parse(&m.to_json());
        assert_eq!(m.remembered("i-01", 1_000 + TTL_SECS - 1), Some(Route::Ssm));
        assert_eq!(m.remembered("i-01", 1_000 + TTL_SECS), None);
        assert_eq!(m.remembered("i-02", 1_000), None);
        assert_eq!(Memory::parse("not json"), Memory::default());
        assert_eq!(
            first_of(vec![Route::Direct, Route::Eice, Route::Ssm], Some(Route::Ssm)),
            [Route::Ssm, Route::Direct, Route::Eice]
        );
        assert_eq!(first_of(vec![Route::Direct, Route::Ssm], Some(Route::Eice)), [Route::Direct, Route::Ssm]);
    }

    #[test]
    fn bounded() {
        let mut m = Memory::default();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            m.record(&format!("i-{i:08x}"), Route::Direct, 10_000 + i);
        }
        assert_eq!(m.routes.len(), MAX_ENTRIES);
        assert_eq!(m.remembered("i-00000000", 10_000 + 20), None, "the oldest went first");
        // Expired entries go on the next record.
        m.record("i-new", Route::Eice, 10_000 + TTL_SECS + 2_000);
        assert_eq!(m.routes.len(), 1);
    }
}
