//! What the audit reports (sans-IO): findings from the file alone (bad lines, weak keys,
//! duplicates, conflicting keys, serial console endpoints with the wrong key) and from facts
//! about EC2 (which instance has an address now, what its console shows).

use std::collections::BTreeMap;

use russh::keys::ssh_key::known_hosts::HostPatterns;
use russh::keys::{HashAlg, PublicKey};
use serde::Serialize;

use super::console::{ConsoleKeys, ConsoleVerdict, verify};
use super::file::{Entry, KnownHostsFile, Line};
use crate::serial::endpoints;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Good news or a fact (a verified key).
    Ok,
    /// Worth a look.
    Info,
    /// Should be fixed.
    Warning,
    /// Could mean a connection to the wrong machine.
    Serious,
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The line does not parse.
    Malformed,
    /// DSA, or RSA under 2048 bits.
    WeakKey,
    /// The same host and key on another line.
    Duplicate,
    /// The same host with another key of the same type on another line.
    Conflict,
    /// A serial console endpoint whose key is not AWS's published one.
    SerialEndpointMismatch,
    /// A serial console endpoint with AWS's published key.
    SerialEndpointVerified,
    /// No instance has this address now.
    NoInstance,
    /// Only terminated instances had this address (or this id is terminated).
    Terminated,
    /// The address belonged to another instance before: the entry may be for the old one.
    Recycled,
    /// The instance's console shows a different key.
    ConsoleMismatch,
    /// The instance's console shows this key.
    Verified,
    /// The instance's console no longer shows a host-key block (or none of this type).
    Unknown,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file.
    pub file: String,
    /// Line number (from 1).
    pub line: usize,
    /// The host the finding is about; for findings about the whole line, the host field as
    /// written (`|1|…` for hashed names).
    pub host: String,
    /// Key algorithm.
    pub key_type: String,
    /// `SHA256:…` of the key (empty for malformed lines).
    pub fingerprint: String,
    /// What.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// The instance involved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The other line of a duplicate or conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_line: Option<usize>,
    /// Details in words.
    pub detail: String,
    /// What to do.
    pub action: String,
}

impl Finding {
    fn new(file: &str, line: usize, entry: Option<&Entry>, kind: Kind, detail: String, action: &str) -> Finding {
        Finding {
            file: file.to_string(),
            line,
            host: entry.map(host_text).unwrap_or_default(),
            key_type: entry.map(|e| e.key_type.clone()).unwrap_or_default(),
            fingerprint: entry.and_then(|e| e.key.as_ref()).map(fingerprint).unwrap_or_default(),
            kind,
            severity: severity(kind),
            instance: None,
            other_line: None,
            detail,
            action: action.to_string(),
        }
    }
}

fn severity(kind: Kind) -> Severity {
    match kind {
        Kind::Verified | Kind::SerialEndpointVerified => Severity::Ok,
        Kind::Unknown | Kind::NoInstance => Severity::Info,
        Kind::Malformed | Kind::WeakKey | Kind::Duplicate | Kind::Terminated => Severity::Warning,
        Kind::Conflict | Kind::Recycled | Kind::ConsoleMismatch | Kind::SerialEndpointMismatch => Severity::Serious,
    }
}

/// `SHA256:…` of a key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The host field as written.
pub fn host_text(e: &Entry) -> String {
    e.hosts.to_string()
}

/// Findings from one file alone.
pub fn from_file(name: &str, file: &KnownHostsFile) -> Vec<Finding> {
    let mut out = Vec::new();
    // (host pattern text, key type) → (line, key blob) of the first entry.
    let mut seen: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for (n, _, line) in &file.lines {
        let entry = match line {
            Line::Malformed(why) => {
                out.push(Finding::new(name, *n, None, Kind::Malformed, why.clone(), "fix or delete the line"));
                continue;
            }
            Line::Entry(e) => &**e,
            Line::Blank | Line::Comment => continue,
        };
        if let Some(why) = weakness(entry) {
            out.push(Finding::new(
                name,
                *n,
                Some(entry),
                Kind::WeakKey,
                why,
                "replace the host key (ssh-keygen -t ed25519 on the host) and re-learn it",
            ));
        }
        if entry.marker.is_some() {
            continue;
        }
        serial_endpoint(name, *n, entry, &mut out);
        let HostPatterns::Patterns(patterns) = &entry.hosts else { continue };
        for host in patterns.iter().filter(|p| !p.starts_with('!')) {
            let slot = (host.to_ascii_lowercase(), entry.key_type.clone());
            match seen.get(&slot) {
                None => {
                    seen.insert(slot, (*n, entry.key_blob.clone()));
                }
                Some((first, blob)) => {
                    let (kind, detail, action) = match *blob == entry.key_blob {
                        true => (
                            Kind::Duplicate,
                            format!("{host} has the same {} key on line {first}", entry.key_type),
                            "delete this line",
                        ),
                        false => (
                            Kind::Conflict,
                            format!(
                                "{host} has a different {} key on line {first}: ssh accepts either",
                                entry.key_type
                            ),
                            "find out which key is right (known-hosts pin for EC2 instances) and delete the other line",
                        ),
                    };
                    let mut f = Finding::new(name, *n, Some(entry), kind, detail, action);
                    f.host = host.clone();
                    f.other_line = Some(*first);
                    out.push(f);
                }
            }
        }
    }
    out
}

fn weakness(e: &Entry) -> Option<String> {
    if e.key_type == "ssh-dss" {
        return Some("DSA host key: OpenSSH no longer accepts DSA by default, and it is weak".into());
    }
    let bits = e.key.as_ref()?.key_data().rsa()?.key_size();
    (bits < 2048).then(|| format!("RSA host key of {bits} bits (less than 2048)"))
}

/// Known_hosts entries for the serial console endpoints must hold AWS's published key.
fn serial_endpoint(name: &str, n: usize, e: &Entry, out: &mut Vec<Finding>) {
    let (HostPatterns::Patterns(patterns), Some(key)) = (&e.hosts, &e.key) else { return };
    for p in patterns {
        let host = bare_host(p);
        let Some((region, expected)) = endpoints::published_for_host(host) else { continue };
        let found = fingerprint(key);
        if found == expected {
            out.push(Finding::new(
                name,
                n,
                Some(e),
                Kind::SerialEndpointVerified,
                format!("the {region} serial console endpoint's published key"),
                "none",
            ));
        } else {
            out.push(Finding::new(
                name,
                n,
                Some(e),
                Kind::SerialEndpointMismatch,
                format!("{host} is the {region} serial console endpoint, whose published key is {expected}; this entry holds {found}"),
                "delete the line: it was learned from something that is not AWS's endpoint",
            ));
        }
    }
}

/// What EC2 says about the hosts an entry names.
#[derive(Debug, Clone, Default)]
pub struct Ec2Facts {
    /// Address or instance id → the instances that have or had it, running first.
    pub by_host: BTreeMap<String, Vec<InstanceFacts>>,
}

/// One instance as far as the audit cares.
#[derive(Debug, Clone)]
pub struct InstanceFacts {
    /// `i-…`.
    pub id: String,
    /// `running`, `terminated`, …
    pub state: String,
    /// The host-key block from its console, if it still shows one.
    pub console: Option<ConsoleKeys>,
}

/// Findings for entries that name EC2 addresses or instance ids, given what EC2 says.
pub fn from_ec2(name: &str, file: &KnownHostsFile, facts: &Ec2Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    for (n, entry) in file.entries() {
        if entry.marker.is_some() {
            continue;
        }
        let (HostPatterns::Patterns(patterns), Some(key)) = (&entry.hosts, &entry.key) else { continue };
        for p in patterns.iter().filter(|p| !p.starts_with('!')) {
            let host = bare_host(p);
            if !ec2_host(host) {
                continue;
            }
            let instances = facts.by_host.get(host).map(Vec::as_slice).unwrap_or_default();
            let mut f = judge(name, n, entry, key, host, instances);
            f.host = p.clone();
            out.push(f);
        }
    }
    out
}

fn judge(name: &str, n: usize, entry: &Entry, key: &PublicKey, host: &str, instances: &[InstanceFacts]) -> Finding {
    let live: Vec<&InstanceFacts> = instances.iter().filter(|i| i.state != "terminated").collect();
    let gone = instances.len() - live.len();
    let with = |mut f: Finding, id: &str| {
        f.instance = Some(id.to_string());
        f
    };
    let Some(current) = live.first() else {
        return match instances.first() {
            Some(old) => with(
                Finding::new(
                    name,
                    n,
                    Some(entry),
                    Kind::Terminated,
                    format!("{host} belonged to {}, which is terminated", old.id),
                    "delete the line",
                ),
                &old.id,
            ),
            None => Finding::new(
                name,
                n,
                Some(entry),
                Kind::NoInstance,
                format!("no instance in this account and Region has {host} now"),
                "delete the line if you no longer use it (or audit with the --profile/--region that owns it)",
            ),
        };
    };
    let verdict = current.console.as_ref().map_or(ConsoleVerdict::Unknown, |c| verify(c, key));
    let f = match verdict {
        ConsoleVerdict::Verified => Finding::new(
            name,
            n,
            Some(entry),
            Kind::Verified,
            format!("{}'s console shows this key", current.id),
            "none",
        ),
        ConsoleVerdict::Mismatch { console } if gone > 0 => Finding::new(
            name,
            n,
            Some(entry),
            Kind::Recycled,
            format!(
                "{host} now belongs to {} (it had {gone} terminated owner(s) before), whose console shows {}",
                current.id,
                console.join(", ")
            ),
            "delete the line; then known-hosts pin the instance",
        ),
        ConsoleVerdict::Mismatch { console } => Finding::new(
            name,
            n,
            Some(entry),
            Kind::ConsoleMismatch,
            format!("{}'s console shows {} for this key type", current.id, console.join(", ")),
            "do not connect until you know why (rebuilt instance, rotated key, or someone in the middle); then fix the line",
        ),
        ConsoleVerdict::Unknown if gone > 0 => Finding::new(
            name,
            n,
            Some(entry),
            Kind::Recycled,
            format!(
                "{host} now belongs to {} and had {gone} terminated owner(s) before; its console shows no host keys to check",
                current.id
            ),
            "check the key out of band, or delete the line and known-hosts pin the instance",
        ),
        ConsoleVerdict::Unknown => Finding::new(
            name,
            n,
            Some(entry),
            Kind::Unknown,
            format!("{}'s console no longer shows its host keys (printed only at first boot)", current.id),
            "nothing to do; known-hosts pin checks keys when the console has them",
        ),
    };
    with(f, &current.id)
}

/// `[host]:port` → `host`.
pub fn bare_host(pattern: &str) -> &str {
    pattern.strip_prefix('[').and_then(|r| r.split_once("]:")).map_or(pattern, |(h, _)| h)
}

/// Hosts the audit can ask EC2 about: IPv4 literals and instance ids (no wildcards).
pub fn ec2_host(host: &str) -> bool {
    if host.contains(['*', '?']) {
        return false;
    }
    host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix("i-")
            .is_some_and(|h| (8..=17).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().clone()
    }

    fn line(host: &str, k: &PublicKey) -> String {
        format!("{host} {}", k.to_openssh().unwrap())
    }

    fn kinds(f: &[Finding]) -> Vec<(usize, Kind)> {
        f.iter().map(|f| (f.line, f.kind)).collect()
    }

    #[test]
    fn file_findings() {
        let (a, b) = (key(), key());
        let eu = "serial-console.ec2-instance-connect.eu-west-1.aws";
        let text = [
            line("web-1,10.0.1.5", &a),
            line("web-1", &a),
            line("10.0.1.5", &b),
            "not a line".to_string(),
            format!("@cert-authority *.corp {}", b.to_openssh().unwrap()),
            line("*.corp", &b),
            line(eu, &a),
            "ssh-dss-host ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPhUGIqqDqR1qT4dTC4YRWgBRNKbcbS3GdJ0fd/BPG9FuZB1zEOvtXdoh4XtyD3yIn62C4p7Xlc8Ybyi+FfpRE/OlyHG+ue1vKDPn/pjdq6dLf0Q5IxRtsCvCAkVoRHD6XWmA7Jr7SJCExaJB6H6VmNOHLX4TsVDaI1z9dzsNrDZ".to_string(),
        ]
        .join("\n");
        let f = from_file("kh", &KnownHostsFile::parse(&text));
        assert_eq!(
            kinds(&f),
            [
                (2, Kind::Duplicate),
                (3, Kind::Conflict),
                (4, Kind::Malformed),
                (7, Kind::SerialEndpointMismatch),
                (8, Kind::WeakKey)
            ],
            "{f:#?}"
        );
        assert!(f[1].detail.contains("10.0.1.5 has a different ssh-ed25519 key on line 1"), "{}", f[1].detail);
        assert_eq!(f[1].severity, Severity::Serious);
        assert!(f[3].detail.contains("SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E"), "{}", f[3].detail);
        assert!(f[4].detail.starts_with("DSA host key"));
    }

    fn facts(host: &str, instances: &[(&str, &str, Option<ConsoleKeys>)]) -> Ec2Facts {
        let list = instances
            .iter()
            .map(|(id, state, console)| InstanceFacts {
                id: id.to_string(),
                state: state.to_string(),
                console: console.clone(),
            })
            .collect();
        Ec2Facts { by_host: BTreeMap::from([(host.to_string(), list)]) }
    }

    #[test]
    fn ec2_findings() {
        let (k, other) = (key(), key());
        let shows = |k: &PublicKey| Some(ConsoleKeys { fingerprints: vec![], keys: vec![k.clone()] });
        let file = KnownHostsFile::parse(&line("[10.0.1.5]:2222", &k));
        let judge =
            |f: Ec2Facts| from_ec2("kh", &file, &f).into_iter().map(|f| (f.kind, f.instance)).collect::<Vec<_>>();
        let id = |s: &str| Some(s.to_string());
        assert_eq!(judge(Ec2Facts::default()), [(Kind::NoInstance, None)]);
        assert_eq!(judge(facts("10.0.1.5", &[("i-01", "terminated", None)])), [(Kind::Terminated, id("i-01"))]);
        assert_eq!(judge(facts("10.0.1.5", &[("i-02", "running", shows(&k))])), [(Kind::Verified, id("i-02"))]);
        assert_eq!(
            judge(facts("10.0.1.5", &[("i-02", "running", shows(&other))])),
            [(Kind::ConsoleMismatch, id("i-02"))]
        );
        assert_eq!(judge(facts("10.0.1.5", &[("i-02", "running", None)])), [(Kind::Unknown, id("i-02"))]);
        let recycled = [("i-02", "running", shows(&other)), ("i-01", "terminated", None)];
        assert_eq!(judge(facts("10.0.1.5", &recycled)), [(Kind::Recycled, id("i-02"))]);
        let recycled_unknown = [("i-02", "running", None), ("i-01", "terminated", None)];
        assert_eq!(judge(facts("10.0.1.5", &recycled_unknown)), [(Kind::Recycled, id("i-02"))]);
        // Names that are not EC2 addresses are not judged.
        let file = KnownHostsFile::parse(&line("web-1,10.0.*", &k));
        assert!(from_ec2("kh", &file, &Ec2Facts::default()).is_empty());
        assert!(ec2_host("i-0a1b2c3d4e5f60718") && ec2_host("127.0.1.10") && !ec2_host("i-xyz") && !ec2_host("web-1"));
    }
}
