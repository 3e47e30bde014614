//! `ec2-broker known-hosts pin HOST`: the instance's host keys, fetched through a broker route,
//! checked against its console, recorded under its instance id.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use serde::Serialize;

use crate::aws::Aws;
use crate::cli::{PinArgs, RouteArg};
use crate::known_hosts::console::{self, ConsoleVerdict};
use crate::known_hosts::file::KnownHostsFile;
use crate::known_hosts::pattern;
use crate::probe::keyscan;
use crate::route::Route;
use crate::route::open::{Ctx, RouteOptions, Stream, Target, open};
use crate::route::serial::SerialOptions;
use crate::route::ssm::SsmOptions;
use crate::target::instance::Instance;

/// Runs the pin.
pub(crate) async fn run(args: PinArgs) -> anyhow::Result<()> {
    let (aws, instance) = super::aws_and_instance(&args.host, &args.aws).await?;
    let label = instance.label();

    let console_text = aws.console_output(&instance.id).await.context("reading the console output")?;
    let console = console_text.as_deref().and_then(console::find);
    let truncated = console_text.as_deref().is_some_and(console::truncated);
    if truncated && console.is_some() {
        tracing::warn!(
            instance = %instance.id,
            "the console output fills the {} KiB GetConsoleOutput returns: its first boot may be cut off, so the host-key \
             block found may have been printed later (by anyone with root on the instance)",
            console::OUTPUT_LIMIT / 1024
        );
    }
    let mut scanned = Vec::new();
    for algorithm in keyscan::KEY_TYPES {
        if let Some(key) = scan(&aws, &instance, &args, algorithm.clone()).await? {
            scanned.push(key);
        }
    }
    if scanned.is_empty() {
        bail!("{label} offered no host key over the {:?} route", args.route);
    }

    let mut pinned = Vec::new();
    let mut rows = Vec::new();
    for key in &scanned {
        let verdict = console.as_ref().map_or(ConsoleVerdict::Unknown, |c| console::verify(c, key));
        let fp = key.fingerprint(HashAlg::Sha256);
        let console = match verdict {
            ConsoleVerdict::Mismatch { console } => bail!(
                "refusing to pin {label}: it presented {} {fp}, but its console shows {} for that key type. \
                 Someone may be in the middle, or the key changed after first boot: find out before trusting it",
                key.algorithm().as_str(),
                console.join(", ")
            ),
            ConsoleVerdict::Verified => "matches",
            ConsoleVerdict::Unknown => "not-shown",
        };
        let pin = console == "matches" || args.accept_unverified;
        if pin {
            pinned.push(key);
        }
        rows.push(KeyJson {
            algorithm: key.algorithm().as_str().to_string(),
            fingerprint: fp.to_string(),
            console,
            pinned: pin,
        });
    }
    if pinned.is_empty() {
        bail!(
            "{label}'s console shows no host keys to check the scanned ones against (the block is printed only at \
             first boot): nothing pinned. Pass --accept-unverified to pin them anyway (the route reached the \
             instance through AWS)"
        );
    }

    let file = match &args.file {
        Some(f) => f.clone(),
        None => dirs::home_dir().context("no home directory: pass --file")?.join(".ssh/known_hosts"),
    };
    write_pins(&file, &instance.id, &pinned)?;
    let doc = PinJson {
        schema: SCHEMA,
        instance: &instance.id,
        name: instance.name.as_deref(),
        file: file.display().to_string(),
        alias: &instance.id,
        console_truncated: truncated,
        keys: rows,
    };
    let text = match args.json {
        // Serializing plain structs of strings and booleans cannot fail.
        true => serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        false => text(&doc, &label),
    };
    crate::output::print(&text).context("writing the report")?;
    Ok(())
}

/// The schema name and version of the `--json` document (docs/output.md; a field may be added
/// within version 1, a change or removal makes version 2).
const SCHEMA: &str = "ec2-broker.known-hosts-pin/1";

/// What `--json` prints.
#[derive(Serialize)]
struct PinJson<'a> {
    schema: &'static str,
    instance: &'a str,
    name: Option<&'a str>,
    file: String,
    alias: &'a str,
    console_truncated: bool,
    keys: Vec<KeyJson>,
}

/// One scanned host key.
#[derive(Serialize)]
struct KeyJson {
    algorithm: String,
    fingerprint: String,
    /// `matches` (the console shows this key) or `not-shown` (it shows none of this type).
    console: &'static str,
    pinned: bool,
}

/// The report for people: a line per key, then the ssh_config lines to add.
fn text(doc: &PinJson<'_>, label: &str) -> String {
    let mut out = format!("pinned host keys of {label} in {} under the alias {}:\n", doc.file, doc.alias);
    for k in &doc.keys {
        let (algorithm, fp) = (&k.algorithm, &k.fingerprint);
        let _ = match (k.console, k.pinned) {
            ("matches", _) => {
                let note = match doc.console_truncated {
                    true => " (console output truncated: the block may not be the first boot's)",
                    false => "",
                };
                writeln!(out, "  {algorithm} {fp}  matches the console{note}")
            }
            (_, true) => writeln!(out, "  {algorithm} {fp}  NOT checked (the console does not show it)"),
            (_, false) => writeln!(out, "  {algorithm} {fp}  skipped: the console does not show it"),
        };
    }
    let name = doc.name.unwrap_or(doc.instance);
    let _ = write!(
        out,
        "Add to your ssh_config so ssh looks the keys up by instance id, whatever its address:\nHost {name}\n    \
         HostKeyAlias {}\n",
        doc.instance
    );
    out
}

/// One key exchange offering `algorithm`, over a fresh connection of the chosen route (opened
/// as every command opens it: `route::open`).
async fn scan(
    aws: &Aws,
    instance: &Instance,
    args: &PinArgs,
    algorithm: Algorithm,
) -> anyhow::Result<Option<PublicKey>> {
    let timeout = Duration::from_secs(args.connect_timeout);
    let route = match args.route {
        RouteArg::Direct => Route::Direct,
        RouteArg::Eice => Route::Eice,
        RouteArg::Ssm => Route::Ssm,
        RouteArg::Serial | RouteArg::Auto => {
            bail!("pin needs one route: --route direct, ssm or eice (the serial console has no sshd behind it)")
        }
    };
    let options = RouteOptions {
        eice: super::eice_options(&args.eice),
        ssm: SsmOptions { resume_timeout: timeout },
        serial: SerialOptions::default(),
        connect_timeout: timeout,
    };
    let target = Target { instance, port: args.port, address: args.address };
    let opened = open(route, &target, &Ctx::new(aws, &options)).await?;
    Ok(match opened.stream {
        Stream::Direct(stream) => keyscan::scan_one(stream, algorithm, timeout).await,
        Stream::Relayed { local, task } => {
            let key = keyscan::scan_one(local, algorithm, timeout).await;
            // The route ends its session once the scan closed the pipe.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            key
        }
        Stream::Serial(_) => None,
    })
}

/// Replaces the alias's entries in `file` (keeping everything else as it was) with `keys`.
fn write_pins(file: &std::path::Path, alias: &str, keys: &[&PublicKey]) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let mut text = String::new();
    if let Some(old) = &old {
        let parsed = KnownHostsFile::parse(old);
        for (_, line, parsed_line) in &parsed.lines {
            let ours = match parsed_line {
                crate::known_hosts::file::Line::Entry(e) => {
                    e.marker.is_none()
                        && matches!(&e.hosts, russh::keys::ssh_key::known_hosts::HostPatterns::Patterns(p) if p.len() == 1)
                        && pattern::matches(&e.hosts, alias, 22)
                }
                _ => false,
            };
            if !ours {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    for key in keys {
        let mut key = (*key).clone();
        key.set_comment("ec2-broker pin");
        let _ = writeln!(text, "{alias} {}", key.to_openssh().context("encoding a host key")?);
    }
    match old {
        Some(_) => super::known_hosts::write_fixed(file, &text),
        None => {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .with_context(|| format!("creating {}", file.display()))?;
            std::io::Write::write_all(&mut f, text.as_bytes()).with_context(|| format!("writing {}", file.display()))
        }
    }
}
