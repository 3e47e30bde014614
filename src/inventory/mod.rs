//! What `ls` and `ssh-config` list: the instances of each account and Region with the facts the
//! APIs gave about them, the route verdicts drawn from those facts ([`routes`]), filters
//! ([`filter`]), the table and the versioned JSON ([`report`]), and the lookups worth caching.
//! Pure: the calls (and [`RegionFacts`], what they return) are in `aws::inventory`, the files in
//! `cmd`.

pub(crate) mod filter;
pub(crate) mod report;
pub(crate) mod routes;

use std::collections::BTreeMap;

pub(crate) use crate::aws::inventory::RegionFacts;
use crate::serial::capable::unsupported_reason;
use crate::target::instance::{Instance, InstanceState};
use crate::target::spec::Target;
pub(crate) use routes::{RouteFacts, RouteSigns};

/// One account (profile) and Region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Scope {
    /// The profile named on the command line; `None` for the default chain.
    pub profile: Option<String>,
    /// The Region.
    pub region: String,
}

/// One listed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Where it lives.
    pub scope: Scope,
    /// The instance.
    pub instance: Instance,
    /// The SSM agent's `PingStatus`, when SSM knows it.
    pub agent_ping: Option<String>,
    /// The route verdicts.
    pub routes: RouteSigns,
}

/// The listed instances of one scope (those `keep` selects), with their route verdicts.
pub(crate) fn listed(scope: &Scope, facts: &RegionFacts, keep: impl Fn(&Instance) -> bool) -> Vec<Listed> {
    facts
        .instances
        .iter()
        .filter(|i| keep(i))
        .map(|i| {
            let agent = facts.agents.as_ref().map(|a| a.get(&i.id).cloned());
            let serial_type = match (&facts.types, &i.instance_type) {
                (Some(types), Some(t)) => types.get(t).map(|info| unsupported_reason(info).is_none()),
                (Some(_), None) => Some(false),
                (None, _) => None,
            };
            let route_facts = RouteFacts {
                state: i.state,
                windows: i.is_windows(),
                private_ip: i.private_ip.is_some(),
                public_ip: i.public_ip.is_some(),
                endpoint_in_vpc: (facts.endpoint_vpcs.as_ref())
                    .map(|vpcs| i.vpc_id.as_ref().is_some_and(|v| vpcs.contains(v))),
                agent_ping: agent.clone(),
                serial_access: facts.serial_access,
                serial_type,
            };
            Listed {
                scope: scope.clone(),
                instance: i.clone(),
                agent_ping: agent.flatten(),
                routes: routes::signs(&route_facts),
            }
        })
        .collect()
}

/// Sorts for display: profile, Region, Name (unnamed last), id.
pub(crate) fn sort(listed: &mut [Listed]) {
    listed.sort_by(|a, b| {
        (a.scope.cmp(&b.scope))
            .then_with(|| a.instance.name.is_none().cmp(&b.instance.name.is_none()))
            .then_with(|| a.instance.name.cmp(&b.instance.name))
            .then_with(|| a.instance.id.cmp(&b.instance.id))
    });
}

/// The lookups `proxy` would cache for these instances, as `(lookup_cache::key, instance)`: each
/// running instance by id, and by Name where that Name resolves to it alone (as
/// `resolve::pick` would decide: one running instance of that Name in its scope).
pub(crate) fn cache_entries(scope: &Scope, instances: &[Instance]) -> Vec<(String, Instance)> {
    let key = |target: &Target| crate::cache::lookup::key(&scope.region, scope.profile.as_deref(), &target.to_string());
    let mut by_name: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in instances {
        if let Some(name) = &i.name {
            by_name.entry(name).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (name, group) in by_name {
        let target = Target::Name(name.to_string());
        // A Name with wildcards would be read as a pattern by proxy: not a lookup of this name.
        if name.contains(['*', '?']) {
            continue;
        }
        let group: Vec<Instance> = group.into_iter().cloned().collect();
        if let Ok(one) = crate::target::resolve::pick(&target, &scope.region, group) {
            out.push((key(&target), one));
        }
    }
    for i in instances.iter().filter(|i| i.state == InstanceState::Running) {
        out.push((key(&Target::InstanceId(i.id.clone())), i.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::serial::capable::TypeInfo;

    fn inst(id: &str, name: Option<&str>, state: InstanceState) -> Instance {
        let mut i = Instance::new(id, state);
        i.name = name.map(str::to_string);
        i.instance_type = Some("t3.micro".into());
        i.private_ip = Some("10.0.0.1".parse().unwrap());
        i.vpc_id = Some("vpc-1".into());
        i
    }

    #[test]
    fn cache_entries_are_what_proxy_would_resolve() {
        let scope = Scope { profile: Some("prod".into()), region: "eu-west-1".into() };
        let instances = vec![
            inst("i-00000001", Some("web-1"), InstanceState::Running),
            inst("i-00000002", Some("web-1"), InstanceState::Terminated),
            inst("i-00000003", Some("api"), InstanceState::Running),
            inst("i-00000004", Some("api"), InstanceState::Running),
            inst("i-00000005", Some("old"), InstanceState::Stopped),
            inst("i-00000006", Some("odd*"), InstanceState::Running),
        ];
        let keys: Vec<String> =
            cache_entries(&scope, &instances).into_iter().map(|(k, i)| format!("{k} {}", i.id)).collect();
        assert_eq!(
            keys,
            [
                "eu-west-1|prod|Name=web-1 i-00000001",
                "eu-west-1|prod|i-00000001 i-00000001",
                "eu-west-1|prod|i-00000003 i-00000003",
                "eu-west-1|prod|i-00000004 i-00000004",
                "eu-west-1|prod|i-00000006 i-00000006",
            ],
            "ambiguous api, stopped old and the wildcard name are not cached by name"
        );
    }

    #[test]
    fn facts_become_verdicts_per_instance() {
        let scope = Scope { profile: None, region: "eu-west-1".into() };
        let mut xen = inst("i-00000002", Some("b"), InstanceState::Running);
        xen.instance_type = Some("t2.micro".into());
        xen.vpc_id = Some("vpc-2".into());
        let facts = RegionFacts {
            instances: vec![inst("i-00000001", Some("a"), InstanceState::Running), xen],
            agents: Some(HashMap::from([("i-00000001".to_string(), "Online".to_string())])),
            endpoint_vpcs: Some(HashSet::from(["vpc-1".to_string()])),
            serial_access: Some(true),
            types: Some(HashMap::from([
                (
                    "t3.micro".to_string(),
                    TypeInfo { name: "t3.micro".into(), hypervisor: Some("nitro".into()), bare_metal: false },
                ),
                (
                    "t2.micro".to_string(),
                    TypeInfo { name: "t2.micro".into(), hypervisor: Some("xen".into()), bare_metal: false },
                ),
            ])),
            notes: Vec::new(),
        };
        let rows = listed(&scope, &facts, |_| true);
        assert_eq!(rows[0].routes.column(), "push,direct,eice,ssm,serial");
        assert_eq!(rows[0].agent_ping.as_deref(), Some("Online"));
        assert_eq!(rows[1].routes.column(), "push,direct");
        let unknown = RegionFacts { agents: None, types: None, ..facts };
        assert_eq!(
            listed(&scope, &unknown, |i| i.id == "i-00000001")[0].routes.column(),
            "push,direct,eice,ssm?,serial?"
        );
    }
}
