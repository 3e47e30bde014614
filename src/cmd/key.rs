//! `ec2-broker key import` and `ec2-broker key new` (issue 17): parse, call `keys::pair`, print.

use std::time::SystemTime;

use anyhow::Context;

use crate::aws::Aws;
use crate::aws::credentials::provider::iso8601;
use crate::cli::{KeyImportArgs, KeyNewArgs};
use crate::keys::pair::{import, new, public_key::ImportableKey};
use crate::output;

/// Largest public-key file read: a 4096-bit RSA .pub is ~750 bytes, an SSH2 block ~1 KiB.
const MAX_PUBLIC_KEY_FILE: u64 = 64 * 1024;
/// Default names tried after `ec2-broker-DATE` when that one exists (`-2` … `-99`).
const DEFAULT_NAME_TRIES: u32 = 99;

/// Runs `key import`; the exit code is 0 when every Region holds the key.
pub(crate) async fn import(args: KeyImportArgs) -> anyhow::Result<u8> {
    let path = &args.public_key;
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    anyhow::ensure!(len <= MAX_PUBLIC_KEY_FILE, "{} is {len} bytes: not a public key file", path.display());
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let key = ImportableKey::parse(&bytes).with_context(|| format!("{} (nothing was imported)", path.display()))?;
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

/// Runs `key new`.
pub(crate) async fn new(args: KeyNewArgs) -> anyhow::Result<()> {
    let home = dirs::home_dir().context("no home directory: set HOME")?;
    let dir = home.join(".ssh");
    let made = match &args.name {
        Some(name) => new::write(&dir, name)?,
        None => {
            let base = format!("ec2-broker-{}", &iso8601(SystemTime::now())[..10]);
            let mut tries =
                std::iter::once(base.clone()).chain((2..=DEFAULT_NAME_TRIES).map(|n| format!("{base}-{n}")));
            loop {
                let name = tries.next().context("every default name is taken: give a NAME")?;
                match new::write(&dir, &name) {
                    Err(new::NewKeyError::Exists(_)) => continue,
                    other => break other?,
                }
            }
        }
    };
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
