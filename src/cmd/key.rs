//! `ec2-broker key import`, `key new`, `key install`, `key revoke` and `key rotate` (issue 17):
//! parse, call `keys::pair` or `route` (which edits authorized_keys with Run Command), print.

use std::time::SystemTime;

use anyhow::Context;

use crate::aws::Aws;
use crate::aws::credentials::provider::iso8601;
use crate::cli::{AwsArgs, KeyImportArgs, KeyInstallArgs, KeyNewArgs, KeyRevokeArgs, KeyRotateArgs};
use crate::keys::pair::public_key::{self, ImportableKey};
use crate::keys::pair::{authorized, import, new};
use crate::known_hosts::exposure::UserKey;
use crate::output;
use crate::route::open::RouteOptions;
use crate::route::place;
use crate::route::rotate::{self, HostOutcome, Keys};
use crate::route::serial::SerialOptions;
use crate::route::ssm::SsmOptions;
use crate::target::instance::{Instance, InstanceState};

/// Runs `key import`; the exit code is 0 when every Region holds the key.
pub(crate) async fn import(args: KeyImportArgs) -> anyhow::Result<u8> {
    let key = match (&args.public_key, &args.from) {
        (Some(path), _) => {
            let bytes = public_key::read_key_file(path).with_context(|| format!("reading {}", path.display()))?;
            ImportableKey::parse(&bytes).with_context(|| format!("{} (nothing was imported)", path.display()))?
        }
        (None, Some(host)) => key_from_host(&args, host).await?,
        (None, None) => anyhow::bail!("give the key: --public-key FILE or --from HOST"),
    };
    let aws = Aws::load(args.profile.as_deref(), args.regions.first().map(String::as_str)).await?;
    let mut regions = if args.regions.is_empty() { vec![aws.region.clone()] } else { args.regions.clone() };
    let mut seen = std::collections::HashSet::new();
    regions.retain(|r| seen.insert(r.clone()));
    let clients: Vec<Aws> = regions.iter().map(|r| aws.in_region(r)).collect();
    let results = import::import_everywhere(&clients, &args.name, &key).await;
    let text = match args.json {
        true => import::json(&args.name, &key, &results),
        false => import::table(&args.name, &key, &results),
    };
    output::print(&text).context("writing the report")?;
    Ok(import::exit_code(&results))
}

/// `key import --from HOST`: the keys in the user's authorized_keys on HOST (read with Run
/// Command, writing nothing), listed (on stderr with --json), and the one to import.
async fn key_from_host(args: &KeyImportArgs, host: &str) -> anyhow::Result<ImportableKey> {
    let aws_args = AwsArgs { profile: args.profile.clone(), region: args.regions.first().cloned() };
    let (aws, instance) = super::aws_and_instance(host, &aws_args).await?;
    let user = crate::text::printable(&args.user).into_owned();
    let shown = crate::text::printable(host).into_owned();
    let (command_id, listing) = place::list(&aws, &instance.id, &args.user).await.with_context(|| {
        format!(
            "reading the authorized_keys of {user} on {shown} ({}) with SSM Run Command (nothing was imported; \
             without Run Command, import the key file: ec2-broker key import {} --public-key FILE)",
            instance.id, args.name
        )
    })?;
    let offered = authorized::offered(&listing.lines);
    let where_ = format!("{shown}'s authorized_keys for {user}");
    let mut text = format!("{where_} (Run Command {command_id}):\n");
    for (file, exists) in &listing.files {
        let held = offered.iter().filter(|k| k.file == *file).count();
        let file = crate::text::printable(file);
        text += &match exists {
            true => format!("  {file}: {held} key(s)\n"),
            false => format!("  {file}: no such file\n"),
        };
    }
    for k in &offered {
        text += &format!("  {}\n", k.describe());
    }
    if listing.truncated > 0 {
        text += &format!(
            "  ({} more line(s) not read: Run Command returns at most 24,000 characters of output)\n",
            listing.truncated
        );
    }
    let mut command = format!("ec2-broker key import {} --from {shown}", args.name);
    if args.user != "ec2-user" {
        command += &format!(" --user {user}");
    }
    if !args.regions.is_empty() {
        command += &format!(" --regions {}", args.regions.join(","));
    }
    let chosen = authorized::choose(&offered, args.fingerprint.as_deref(), &where_, &command)?;
    text += &format!("importing {}\n", chosen.ssh_fingerprint);
    match args.json {
        true => eprint!("{text}"),
        false => output::print(&text).context("writing the report")?,
    }
    Ok(chosen.verdict.clone()?)
}

/// Runs `key new`.
pub(crate) async fn new(args: KeyNewArgs) -> anyhow::Result<()> {
    let home = dirs::home_dir().context("no home directory: set HOME")?;
    let dir = home.join(".ssh");
    let today = &iso8601(SystemTime::now())[..10];
    let made = new::write_named_or_default(&dir, args.name.as_deref(), today)?;
    let name = made.private_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut text = format!(
        "wrote {} (0600) and {} (0644)\nkey {} (ed25519, no passphrase)\n",
        made.private_path.display(),
        made.public_path.display(),
        made.fingerprint
    );
    if args.agent {
        new::add_to_agent(&made).await.context("adding the key to ssh-agent")?;
        text += "added to ssh-agent\n";
    }
    text += &format!("next: ec2-broker key import {name} --public-key {}\n", made.public_path.display());
    output::print(&text).context("writing the report")?;
    Ok(())
}

/// Runs `key install`: the public key, for good, with Run Command.
pub(crate) async fn install(args: KeyInstallArgs) -> anyhow::Result<()> {
    let path = &args.public_key;
    let bytes = public_key::read_key_file(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.trim();
    let fingerprint = rotate::public_fingerprint(line)
        .with_context(|| format!("{} holds no OpenSSH public key line (nothing was installed)", path.display()))?;
    let (aws, instance) = super::aws_and_instance(&args.host, &args.aws).await?;
    let done = place::install(&aws, &instance.id, &args.user, line).await?;
    let what = match done.added {
        true => "installed",
        false => "already installed, nothing written:",
    };
    let user = crate::text::printable(&args.user);
    let text = format!("{what} key {fingerprint} for {user} on {} (Run Command {})\n", instance.id, done.command_id);
    output::print(&text).context("writing the report")?;
    Ok(())
}

/// Runs `key revoke`: every line of the key, never the last key line unless --force.
pub(crate) async fn revoke(args: KeyRevokeArgs) -> anyhow::Result<()> {
    let (aws, instance) = super::aws_and_instance(&args.host, &args.aws).await?;
    let done = place::revoke(&aws, &instance.id, &args.user, &args.fingerprint, args.force).await?;
    let user = crate::text::printable(&args.user);
    let text = format!(
        "removed {} line(s) with key {} for {user} on {} (Run Command {})\n",
        done.removed, args.fingerprint, instance.id, done.command_id
    );
    output::print(&text).context("writing the report")?;
    Ok(())
}

/// Runs `key rotate`; the exit code is 0 when every host is done (or, without --yes, planned).
pub(crate) async fn rotate(args: KeyRotateArgs) -> anyhow::Result<u8> {
    let keys = Keys::read(&args.old, &args.new).context("nothing was changed")?;
    let options = RouteOptions {
        eice: super::eice_options(&args.eice),
        ssm: SsmOptions { resume_timeout: std::time::Duration::from_secs(10) },
        serial: SerialOptions::default(),
        connect_timeout: std::time::Duration::from_secs(10),
    };
    let mut results = Vec::new();
    if args.from_audit {
        let (aws, found) = audit_hosts(&args, &keys).await?;
        for instance in found {
            let host = instance.name.clone().unwrap_or_else(|| instance.id.clone());
            let outcome = match instance.state {
                InstanceState::Running if !args.yes => rotate::plan_for(&host, &instance, &keys, &args.user),
                InstanceState::Running => {
                    let port = ssh_port(&host, args.ssh_config.as_deref());
                    rotate::rotate(&aws, &options, &host, &instance, port, &args.user, &keys).await
                }
                state => HostOutcome {
                    host,
                    instance: Some(instance.id.clone()),
                    note: format!("{state}: not rotated (start it, then run again)"),
                    ..HostOutcome::default()
                },
            };
            results.push(outcome);
        }
    }
    for host in &args.hosts {
        let name = host.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(host.as_str(), |(h, _)| h);
        let port = super::doctor::explicit_port(host).unwrap_or_else(|| ssh_port(name, args.ssh_config.as_deref()));
        let outcome = match super::aws_and_instance(name, &args.aws).await {
            Err(e) => HostOutcome { host: host.clone(), note: format!("{e:#}"), ..HostOutcome::default() },
            Ok((_, instance)) if !args.yes => rotate::plan_for(host, &instance, &keys, &args.user),
            Ok((aws, instance)) => rotate::rotate(&aws, &options, host, &instance, port, &args.user, &keys).await,
        };
        results.push(outcome);
    }
    let text = match args.json {
        true => rotate::json(&keys, &args.user, !args.yes, &results),
        false => rotate::table(&keys, !args.yes, &results),
    };
    output::print(&text).context("writing the report")?;
    let ok = results.iter().all(|r| r.instance.is_some() && (!args.yes || r.done()));
    Ok(if ok { 0 } else { 1 })
}

/// `--from-audit`: the instances `known-hosts audit --key OLD` finds (launched with a key pair
/// holding the old key), not terminated, each once; what the audit cannot see is said on stderr.
async fn audit_hosts(args: &KeyRotateArgs, keys: &Keys) -> anyhow::Result<(Aws, Vec<Instance>)> {
    let aws = Aws::load(args.aws.profile.as_deref(), args.aws.region.as_deref()).await?;
    let old = UserKey::Fingerprint(keys.old_fingerprint.clone());
    let reach = super::known_hosts::reach(&aws, &old)
        .await
        .context("finding the instances the old key opened (known-hosts audit --key); nothing was changed")?;
    let mut found: Vec<Instance> =
        reach.launched.into_iter().filter(|i| i.state != InstanceState::Terminated).collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.dedup_by(|a, b| a.id == b.id);
    let mut notes = String::new();
    if found.is_empty() {
        notes += &format!(
            "ec2-broker: no instance was launched with a key pair holding {} (key pairs: {}): nothing to rotate; name hosts to rotate others\n",
            keys.old_fingerprint,
            if reach.key_pairs.is_empty() { "none".to_string() } else { reach.key_pairs.join(", ") }
        );
    }
    if !reach.undetermined_key_pairs.is_empty() {
        notes += &format!(
            "ec2-broker: EC2 cannot tell whether key pairs {} hold the old key (give --old as a .pub file, or name their instances)\n",
            reach.undetermined_key_pairs.join(", ")
        );
    }
    notes += &format!("ec2-broker: {}\n", crate::known_hosts::exposure::NOTE);
    eprint!("{}", crate::text::printable_lines(&notes));
    Ok((aws, found))
}

/// The port ssh would use for `host` (`ssh -G`), else 22.
fn ssh_port(host: &str, config: Option<&std::path::Path>) -> u16 {
    let text = super::doctor::ssh_g(host, config).unwrap_or_default();
    crate::doctor::ssh_config::parse(&text).port.unwrap_or(22)
}
