//! What an inventory must satisfy before a lab starts with it.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use anyhow::{bail, ensure};

use super::{ENDPOINT_STATES, Inventory};

impl Inventory {
    /// Checks the inventory: loopback addresses only; unique instance ids; no address shared
    /// by two running instances (each running instance's sshd listens on its addresses, while
    /// stopped and terminated ones may share a running one's: EC2 recycles addresses);
    /// well-formed endpoints; key pairs with unique names and an Ed25519 or RSA public key.
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
        Ok(())
    }
}
