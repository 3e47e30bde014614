//! `ec2-broker known-hosts audit`: what the user's known_hosts says, checked against EC2.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;

use crate::aws::Aws;
use crate::cache::private_file::user_file::{self, Rewritten};
use crate::cli::AuditArgs;
use crate::known_hosts::exposure::{self, AuditedInstance, ExposedInstance, Exposure, UserKey};
use crate::known_hosts::file::KnownHostsFile;
use crate::known_hosts::findings::{self, Ec2Facts, Finding, InstanceFacts, Severity};
use crate::known_hosts::fix;
use crate::target::instance::{Instance, InstanceState};
use russh::keys::ssh_key::known_hosts::HostPatterns;

/// Runs the audit; returns the exit code: 0 nothing to fix, 1 findings, 2 error (printed).
pub(crate) async fn audit(args: AuditArgs) -> u8 {
    match run(&args).await {
        Ok(report) => {
            let out = match args.json {
                true => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
                // Continuation lines of a finding are indented by 9.
                false => crate::output::width::wrap(&table(&report), crate::output::width::stdout_width(), 9),
            };
            if let Err(e) = crate::output::print(&out) {
                crate::error::report(&anyhow::Error::new(e).context("writing the report"));
                return 2;
            }
            u8::from(report.findings.iter().any(|f| f.severity >= Severity::Warning))
        }
        Err(e) => {
            crate::error::report(&e);
            2
        }
    }
}

/// From this many lines on, the audit lists the Region's instances while the files parse: their
/// addresses are then surely more than the filtered lookup's limit (1600, `Aws::instances_for_hosts`),
/// so the listing is what the lookup would do anyway.
const LIST_REGION_FROM_LINES: usize = 4000;

/// The schema name and version of the `--json` document (docs/output.md; a field may be added
/// within version 1, a change or removal makes version 2).
const SCHEMA: &str = "ec2-broker.known-hosts-audit/1";

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    files: Vec<String>,
    entries: usize,
    findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_exposure: Option<Exposure>,
}

async fn run(args: &AuditArgs) -> anyhow::Result<Report> {
    let paths = files(&args.files)?;
    let mut audited = Vec::new();
    for path in &paths {
        audited.push(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    if args.offline && args.key.is_some() {
        anyhow::bail!("--key asks EC2 which key pairs hold the key: drop --offline");
    }
    // The files are parsed on a blocking thread while the credentials load and, for files this
    // large, the Region's instances are listed, which is what their lookup needs anyway
    // (`Aws::instances_for_hosts`): one after the other, the two took 0.4 s and 0.9 s of the
    // benchmark's 1.3 s (100 000 lines, 10 000 instances).
    let audited = std::sync::Arc::new(audited);
    let parsing = {
        let audited = audited.clone();
        tokio::task::spawn_blocking(move || audited.iter().map(|b| KnownHostsFile::from_bytes(b)).collect::<Vec<_>>())
    };
    let lines: usize = audited.iter().map(|b| b.iter().filter(|c| **c == b'\n').count()).sum();
    let (aws, listed) = match args.offline {
        true => (None, None),
        false => {
            let aws = Aws::load(args.aws.profile.as_deref(), args.aws.region.as_deref()).await?;
            // Only a head start: a failure (no ec2:DescribeInstances, say) is the lookup's to
            // report, and a file with no EC2 host in it needs no EC2 call at all.
            let listed = match lines >= LIST_REGION_FROM_LINES {
                true => aws.all_instances().await.inspect_err(|e| tracing::debug!("listing the Region: {e}")).ok(),
                false => None,
            };
            (Some(aws), listed)
        }
    };
    let parsed: Vec<(String, KnownHostsFile)> =
        paths.iter().map(|p| p.display().to_string()).zip(parsing.await.context("parsing the files")?).collect();
    let mut findings: Vec<Finding> = parsed.iter().flat_map(|(name, f)| findings::from_file(name, f)).collect();
    let mut instances = Vec::new();
    if let Some(aws) = &aws {
        let (facts, found) = ec2_facts(aws, &parsed, listed, !args.no_console).await?;
        findings.extend(parsed.iter().flat_map(|(name, f)| findings::from_ec2(name, f, &facts)));
        instances = found;
    }
    let key_exposure = match (&args.key, &aws) {
        (Some(key), Some(aws)) => Some(exposure(aws, key, &parsed, &instances).await?),
        _ => None,
    };
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if args.fix {
        for (((name, file), path), bytes) in parsed.iter().zip(&paths).zip(audited.iter()) {
            let mine: Vec<Finding> = findings.iter().filter(|f| &f.file == name).cloned().collect();
            if fix::fix(file, &mine).1.is_empty() {
                continue;
            }
            let (done, removed) = fix_file(path, bytes, &mine, SystemTime::now())
                .with_context(|| format!("fixing {}", path.display()))?;
            let lines = removed.iter().filter(|r| r.whole_line).count();
            eprintln!(
                "fixed {name}: {lines} line(s) removed, {} line(s) narrowed; the old file is {}",
                removed.len() - lines,
                done.backup.display()
            );
        }
    }
    let entries = parsed.iter().map(|(_, f)| f.entries().count()).sum();
    Ok(Report { schema: SCHEMA, files: parsed.into_iter().map(|(n, _)| n).collect(), entries, findings, key_exposure })
}

/// Where a user key reaches, as far as EC2 can tell.
pub(crate) struct Reach {
    /// Key pairs that hold the key.
    pub key_pairs: Vec<String>,
    /// Key pairs the API cannot tell about.
    pub undetermined_key_pairs: Vec<String>,
    /// Every instance launched with one of `key_pairs`, in any state.
    pub launched: Vec<Instance>,
}

/// Which key pairs hold `user`'s key, and every instance launched with one of them: what `--key`
/// reports, and the hosts of `key rotate --from-audit`.
pub(crate) async fn reach(aws: &Aws, user: &UserKey) -> anyhow::Result<Reach> {
    let pairs = aws.key_pairs().await.context("listing key pairs")?;
    let (key_pairs, undetermined_key_pairs) = exposure::classify(&pairs, user);
    let launched = match key_pairs.is_empty() {
        true => Vec::new(),
        false => aws.instances_with_key_pairs(&key_pairs).await.context("looking up instances by key pair")?,
    };
    Ok(Reach { key_pairs, undetermined_key_pairs, launched })
}

/// Which key pairs hold `key`, and every instance launched with one of them.
async fn exposure(
    aws: &Aws,
    key: &str,
    parsed: &[(String, KnownHostsFile)],
    audited: &[Instance],
) -> anyhow::Result<Exposure> {
    let text = std::fs::read_to_string(key).ok();
    let user = UserKey::parse(key, text.as_deref()).map_err(anyhow::Error::msg)?;
    let Reach { key_pairs, undetermined_key_pairs, launched } = reach(aws, &user).await?;
    // Each known_hosts name once: host → the lines naming it.
    let mut lines_for: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (file, f) in parsed {
        for (n, e) in f.entries() {
            let HostPatterns::Patterns(p) = &e.hosts else { continue };
            for h in p.iter().filter(|h| !h.starts_with('!')) {
                lines_for.entry(findings::bare_host(h)).or_default().push(format!("{file}:{n} {h}"));
            }
        }
    }
    let known_as = |i: &Instance| -> Vec<String> {
        let names = [i.private_ip.map(|a| a.to_string()), i.public_ip.map(|a| a.to_string()), Some(i.id.clone())];
        names.iter().flatten().flat_map(|n| lines_for.get(n.as_str()).cloned().unwrap_or_default()).collect()
    };
    let instances = launched
        .iter()
        .map(|i| ExposedInstance {
            id: i.id.clone(),
            name: i.name.clone(),
            state: i.state.as_str().to_string(),
            key_name: i.key_name.clone().unwrap_or_default(),
            known_as: known_as(i),
        })
        .collect();
    // The instances known_hosts leads to: launched with the key, with another key pair, or unknown.
    let audited = audited
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .map(|i| AuditedInstance {
            id: i.id.clone(),
            key_name: i.key_name.clone(),
            launched_with_key: match i.key_name.as_deref() {
                None => Some(false),
                Some(k) if key_pairs.iter().any(|p| p == k) => Some(true),
                Some(k) if undetermined_key_pairs.iter().any(|p| p == k) => None,
                Some(_) => Some(false),
            },
            known_as: known_as(i),
        })
        .collect();
    Ok(Exposure {
        key: user.fingerprint(),
        key_pairs,
        undetermined_key_pairs,
        instances,
        audited,
        note: exposure::NOTE.into(),
        advice: user.advice(),
    })
}

/// Removes what `findings` (about `audited`, the bytes the audit read) say to remove from the
/// file at `path`, keeping lines ssh appended since, the file's owner, mode, line endings and
/// symbolic link, and a backup beside it ([`user_file::rewrite`]).
fn fix_file(
    path: &Path,
    audited: &[u8],
    findings: &[Finding],
    now: SystemTime,
) -> anyhow::Result<(Rewritten, Vec<fix::Removal>)> {
    let mut removed = Vec::new();
    let done = user_file::rewrite(path, now, |current| {
        let (bytes, removals) = fix::refix(audited, current, findings)?;
        removed = removals;
        Some(bytes)
    })?;
    Ok((done, removed))
}

/// Replaces the file at `path` with `text` the way `--fix` does (symbolic link, owner and mode
/// kept, a backup beside it); `pin` rewrites with it too.
pub(crate) fn write_fixed(path: &Path, text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    user_file::rewrite(path, SystemTime::now(), |_| Some(text.as_ref().to_vec()))?;
    Ok(())
}

/// The files to read: the ones named (each must exist), else the default ones that exist.
fn files(named: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let mut out: Vec<PathBuf> = dirs::home_dir().map(|h| h.join(".ssh/known_hosts")).into_iter().collect();
    out.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    out.retain(|p| Path::exists(p));
    anyhow::ensure!(
        !out.is_empty(),
        "no known_hosts file found (~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts): name one"
    );
    Ok(out)
}

/// Looks up every EC2 address and id the files name, and the consoles of the instances found.
async fn ec2_facts(
    aws: &Aws,
    parsed: &[(String, KnownHostsFile)],
    listed: Option<Vec<Instance>>,
    consoles: bool,
) -> anyhow::Result<(Ec2Facts, Vec<Instance>)> {
    let mut addresses = Vec::new();
    let mut ids = Vec::new();
    for (_, file) in parsed {
        for (_, entry) in file.entries() {
            let HostPatterns::Patterns(patterns) = &entry.hosts else { continue };
            for host in patterns.iter().filter(|p| !p.starts_with('!')).map(|p| findings::bare_host(p)) {
                match (findings::ec2_host(host), host.starts_with("i-")) {
                    (true, true) => ids.push(host.to_string()),
                    (true, false) => addresses.push(host.to_string()),
                    _ => {}
                }
            }
        }
    }
    addresses.sort_unstable();
    addresses.dedup();
    ids.sort_unstable();
    ids.dedup();
    if addresses.is_empty() && ids.is_empty() {
        return Ok((Ec2Facts::default(), Vec::new()));
    }
    let instances = match listed {
        Some(all) => crate::aws::known_hosts::instances_among(all, &addresses, &ids),
        None => aws.instances_for_hosts(&addresses, &ids).await.context("looking up the addresses in EC2")?,
    };

    let live: Vec<&Instance> = instances.iter().filter(|i| consoles && i.state != InstanceState::Terminated).collect();
    let consoles = super::console_reads::read(aws, &live).await?.blocks;

    let mut facts = Ec2Facts::default();
    let mut ordered: Vec<&Instance> = instances.iter().collect();
    // Running (and other live) instances first: they own the address now.
    ordered.sort_by_key(|i| i.state == InstanceState::Terminated);
    for i in ordered {
        let fact = InstanceFacts {
            id: i.id.clone(),
            state: i.state.as_str().to_string(),
            console: consoles.get(&i.id).cloned().flatten(),
        };
        let hosts = [i.private_ip.map(|a| a.to_string()), i.public_ip.map(|a| a.to_string()), Some(i.id.clone())];
        for host in hosts.into_iter().flatten() {
            facts.by_host.entry(host).or_default().push(fact.clone());
        }
    }
    Ok((facts, instances))
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} entries in {}", report.entries, report.files.join(", "));
    if report.findings.is_empty() {
        let _ = writeln!(out, "no findings");
    }
    if let Some(x) = &report.key_exposure {
        let _ = writeln!(out, "key {}: key pairs holding it: {}", x.key, list_or_none(&x.key_pairs));
        if !x.undetermined_key_pairs.is_empty() {
            let _ = writeln!(out, "  the API cannot tell for: {}", x.undetermined_key_pairs.join(", "));
        }
        for i in &x.instances {
            let known = if i.known_as.is_empty() { "not in known_hosts".to_string() } else { i.known_as.join(", ") };
            let name = i.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(out, "  {}{name} {} launched with {}: {known}", i.id, i.state, i.key_name);
        }
        for a in &x.audited {
            let verdict = match a.launched_with_key {
                Some(true) => "launched with this key",
                Some(false) => "not launched with this key",
                None => "cannot tell",
            };
            let pair = a.key_name.as_deref().unwrap_or("no key pair");
            let _ = writeln!(out, "  known_hosts → {} ({pair}): {verdict}", a.id);
        }
        let _ = writeln!(out, "  note: {}", x.note);
        if let Some(advice) = &x.advice {
            let _ = writeln!(out, "  advice: {advice}");
        }
    }
    for f in &report.findings {
        let severity =
            serde_json::to_value(f.severity).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8} {:<26} {}:{}  {}  {} {}",
            severity, kind, f.file, f.line, f.host, f.key_type, f.fingerprint
        );
        let instance = f.instance.as_deref().map(|i| format!(" [{i}]")).unwrap_or_default();
        let _ = writeln!(out, "         {}{instance}", f.detail);
        if f.action != "none" {
            let _ = writeln!(out, "         → {}", f.action);
        }
    }
    out
}

fn list_or_none(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".into(),
        false => items.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use russh::keys::{Algorithm, PrivateKey};

    use super::*;

    fn key() -> String {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().to_openssh().unwrap()
    }

    /// See: issue 14. ssh appending a host while the audit ran: the old `--fix` wrote the audited
    /// text back and the new line was lost.
    #[test]
    fn issue_14_fix_keeps_lines_ssh_appended_after_the_audit_read_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("known_hosts");
        let (a, b) = (key(), key());
        std::fs::write(&path, format!("web-1 {a}\nweb-1 {a}\n")).unwrap();
        let audited = std::fs::read(&path).unwrap();
        let found = findings::from_file("kh", &KnownHostsFile::from_bytes(&audited));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(format!("db-1 {b}\n").as_bytes())
            .unwrap();

        let (done, removed) = fix_file(&path, &audited, &found, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("web-1 {a}\ndb-1 {b}\n"));
        assert_eq!(removed.len(), 1);
        assert_eq!(done.backup, tmp.path().join("known_hosts.ec2-broker-backup.19700101T000000Z"));
        assert_eq!(std::fs::read_to_string(&done.backup).unwrap(), format!("web-1 {a}\nweb-1 {a}\ndb-1 {b}\n"));

        // Rewritten by something else since the audit: refused, the file untouched.
        std::fs::write(&path, format!("other {b}\n")).unwrap();
        let e = fix_file(&path, &audited, &found, SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(format!("{e:#}").contains("changed while ec2-broker was working on it"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("other {b}\n"));
    }
}
