//! What an inventory must satisfy before a lab starts with it.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use anyhow::{bail, ensure};

use super::instance_profile::valid_profile_name;
use super::role::valid_role_name;
use super::security_group::{rule_problem, valid_group_id};
use super::{ENDPOINT_STATES, Inventory, NO_INSTANCE_PROFILE, implicit_security_groups};

impl Inventory {
    /// Checks the inventory: loopback addresses only; unique instance ids; no address shared
    /// by two running instances (each running instance's sshd listens on its addresses, while
    /// stopped and terminated ones may share a running one's: EC2 recycles addresses);
    /// well-formed endpoints; key pairs with unique names and an Ed25519 or RSA public key;
    /// security groups with unique `sg-` hex ids and valid rules, which instances name only if
    /// they exist; instance profiles and roles as ARNs of the inventory's account.
    /// `from_toml` and `Lab::start` call it.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut ids = HashSet::with_capacity(self.instances.len());
        let mut bound: HashMap<Ipv4Addr, &str> = HashMap::new();
        for i in &self.instances {
            ensure!(ids.insert(i.id.as_str()), "instance {} is listed twice", i.id);
            for ip in [i.private_ip, i.public_ip].into_iter().flatten() {
                ensure!(
                    ip.is_loopback(),
                    "instance {}: address {ip} is not loopback: the lab only uses 127.0.0.0/8",
                    i.id
                );
                if i.state != "running" {
                    continue;
                }
                if let Some(other) = bound.insert(ip, &i.id) {
                    bail!(
                        "instances {other} and {} are both running with address {ip}: only stopped or terminated \
                         instances may share a running instance's address",
                        i.id
                    );
                }
            }
        }
        for (n, e) in self.endpoints.iter().enumerate() {
            let body = e.id.strip_prefix("eice-").unwrap_or_default();
            ensure!(
                !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "endpoint {}: the id must look like eice-0123456789abcdef0",
                e.id
            );
            ensure!(!self.endpoints[..n].iter().any(|o| o.id == e.id), "endpoint {} is listed twice", e.id);
            ensure!(
                ENDPOINT_STATES.contains(&e.state.as_str()),
                "endpoint {}: unknown state {:?} (one of {})",
                e.id,
                e.state,
                ENDPOINT_STATES.join(", ")
            );
            ensure!(
                e.max_tunnel_duration_cap.is_none_or(|c| (1..=3600).contains(&c)),
                "endpoint {}: max_tunnel_duration_cap must be 1-3600 seconds",
                e.id
            );
        }
        for (n, k) in self.key_pairs.iter().enumerate() {
            ensure!(!self.key_pairs[..n].iter().any(|o| o.name == k.name), "key pair {} is listed twice", k.name);
            let kind = k.public_key.split_whitespace().next().unwrap_or_default();
            ensure!(
                matches!(kind, "ssh-ed25519" | "ssh-rsa") && crate::console::KeyLine::parse(&k.public_key).is_some(),
                "key pair {}: public_key must be an OpenSSH ssh-ed25519 or ssh-rsa public key line (EC2 takes no other type)",
                k.name
            );
        }
        self.check_security_groups()?;
        self.check_network()?;
        self.check_iam()
    }

    fn check_network(&self) -> anyhow::Result<()> {
        use super::network::{ENDPOINT_KINDS, ENDPOINT_STATES, NAT_STATES, valid_id};
        for (n, e) in self.vpc_endpoints.iter().enumerate() {
            ensure!(valid_id("vpce-", &e.id), "vpc endpoint {}: the id must be vpce- and 8 or 17 hex digits", e.id);
            ensure!(!self.vpc_endpoints[..n].iter().any(|o| o.id == e.id), "vpc endpoint {} is listed twice", e.id);
            ensure!(ENDPOINT_KINDS.contains(&e.kind.as_str()), "vpc endpoint {}: unknown kind {:?}", e.id, e.kind);
            ensure!(
                ENDPOINT_STATES.contains(&e.state.as_str()),
                "vpc endpoint {}: unknown state {:?} (lower case, as on the wire: {})",
                e.id,
                e.state,
                ENDPOINT_STATES.join(", ")
            );
            for g in &e.security_groups {
                ensure!(self.security_group(g).is_some(), "vpc endpoint {}: security group {g} does not exist", e.id);
            }
        }
        for (n, t) in self.route_tables.iter().enumerate() {
            ensure!(valid_id("rtb-", &t.id), "route table {}: the id must be rtb- and 8 or 17 hex digits", t.id);
            ensure!(!self.route_tables[..n].iter().any(|o| o.id == t.id), "route table {} is listed twice", t.id);
            ensure!(
                !(t.main && self.route_tables[..n].iter().any(|o| o.main && o.vpc_id == t.vpc_id)),
                "route table {}: {} has two main route tables",
                t.id,
                t.vpc_id
            );
            for r in &t.routes {
                ensure!(
                    matches!(r.state.as_str(), "active" | "blackhole"),
                    "route table {}: route state {:?} is not active or blackhole",
                    t.id,
                    r.state
                );
            }
        }
        for (n, g) in self.nat_gateways.iter().enumerate() {
            ensure!(valid_id("nat-", &g.id), "nat gateway {}: the id must be nat- and 8 or 17 hex digits", g.id);
            ensure!(!self.nat_gateways[..n].iter().any(|o| o.id == g.id), "nat gateway {} is listed twice", g.id);
            ensure!(NAT_STATES.contains(&g.state.as_str()), "nat gateway {}: unknown state {:?}", g.id, g.state);
        }
        for i in &self.instances {
            ensure!(
                matches!(i.metadata_endpoint.as_str(), "enabled" | "disabled"),
                "instance {}: metadata_endpoint must be enabled or disabled",
                i.id
            );
        }
        Ok(())
    }

    fn check_security_groups(&self) -> anyhow::Result<()> {
        for (n, g) in self.security_groups.iter().enumerate() {
            ensure!(
                valid_group_id(&g.id),
                "security group {}: the id must be sg- and 8 or 17 lower-case hex digits",
                g.id
            );
            ensure!(
                !implicit_security_groups().iter().any(|o| o.id == g.id),
                "security group {}: that id is one of the lab's implicit groups",
                g.id
            );
            ensure!(!self.security_groups[..n].iter().any(|o| o.id == g.id), "security group {} is listed twice", g.id);
            ensure!(!g.name.is_empty(), "security group {}: the name is empty", g.id);
            if let Some(problem) = g.ingress.iter().chain(g.egress.iter().flatten()).find_map(rule_problem) {
                bail!("security group {}: {problem}", g.id);
            }
        }
        for i in &self.instances {
            for id in i.security_groups.iter().flatten() {
                ensure!(self.security_group(id).is_some(), "instance {}: security group {id} does not exist", i.id);
            }
        }
        Ok(())
    }

    fn check_iam(&self) -> anyhow::Result<()> {
        let profile_prefix = format!("arn:aws:iam::{}:instance-profile/", self.account);
        for i in &self.instances {
            let Some(profile) = i.instance_profile.as_deref().filter(|p| *p != NO_INSTANCE_PROFILE) else {
                continue;
            };
            ensure!(
                profile.strip_prefix(&profile_prefix).is_some_and(valid_profile_name),
                "instance {}: instance_profile must be \"none\" or {profile_prefix}<name>, not {profile:?}",
                i.id
            );
        }
        let role_prefix = format!("arn:aws:iam::{}:role/", self.account);
        for (n, r) in self.roles.iter().enumerate() {
            ensure!(
                r.arn.strip_prefix(&role_prefix).is_some_and(valid_role_name),
                "role {}: the ARN must be {role_prefix}<name>",
                r.arn
            );
            ensure!(!self.roles[..n].iter().any(|o| o.arn == r.arn), "role {} is listed twice", r.arn);
            for (name, doc) in &r.inline_policies {
                ensure!(
                    serde_json::from_str::<serde_json::Value>(doc).is_ok(),
                    "role {}: inline policy {name} is not JSON",
                    r.arn
                );
            }
        }
        let roles = self.all_roles();
        for (n, p) in self.instance_profiles.iter().enumerate() {
            ensure!(valid_profile_name(&p.name), "instance profile {:?}: not a valid name", p.name);
            ensure!(
                !self.instance_profiles[..n].iter().any(|o| o.name == p.name),
                "instance profile {} is listed twice",
                p.name
            );
            if let Some(role) = &p.role {
                ensure!(
                    roles.iter().any(|r| r.name() == role),
                    "instance profile {}: no [[role]] named {role}",
                    p.name
                );
            }
        }
        Ok(())
    }
}
