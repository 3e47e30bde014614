//! `ec2-broker ssh-config`: Host blocks for the listed instances, printed or kept in a marked
//! section of an Include file (`--write`), with the changes shown on stderr.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::SshConfigArgs;
use crate::inventory::filter::Filters;
use crate::ssh_config_gen::block::{self, Options};
use crate::ssh_config_gen::include::{self, Included};
use crate::ssh_config_gen::{diff, section, section_name};
use crate::{output, user_file};

/// Runs `ssh-config`; exit code 0, or 1 when some Region could not be listed (nothing is then
/// written, so no host is dropped from the file by a failed call).
pub async fn run(args: SshConfigArgs) -> anyhow::Result<u8> {
    let filters = Filters::parse(&args.filters)?;
    let survey = super::ls::survey(&args.scope, false, &filters).await?;
    super::ls::warm_lookup_cache(&survey.scopes, &filters);
    let instances: Vec<_> = survey.rows.iter().map(|r| (r.scope.clone(), r.instance.clone())).collect();
    let opts = Options {
        user: args.user.clone(),
        prefix_profile: args.prefix_profile,
        broker: match &args.broker {
            Some(path) => path.display().to_string(),
            None => default_broker(),
        },
        key_dir: key_dir_for_config()?,
    };
    let generated = block::generate(&instances, &opts)?;
    for c in &generated.collisions {
        let resolved: Vec<String> = c.resolved.iter().map(|(alias, id)| format!("{alias} ({id})")).collect();
        note(&format!(
            "{} instances share the alias {}: written as {}",
            c.resolved.len(),
            c.alias,
            resolved.join(", ")
        ));
    }
    let Some(file) = args.write else {
        output::print(&generated.text).context("writing the Host blocks")?;
        return Ok(survey.exit_code());
    };
    if survey.exit_code() != 0 {
        bail!("not writing {}: some Regions could not be listed, and their hosts would be dropped", file.display());
    }
    write_section(&file, &section_name(&args.scope.profiles), &generated.text, generated.hosts.len())?;
    Ok(0)
}

/// Replaces the section in `file`, shows the diff, and says how to make ssh read the file.
fn write_section(file: &Path, name: &str, body: &str, hosts: usize) -> anyhow::Result<()> {
    let home = dirs::home_dir().context("no home directory: set HOME")?;
    let file = if file.is_absolute() { file.to_path_buf() } else { std::env::current_dir()?.join(file) };
    refuse_main_config(&file, &home)?;
    let current = user_file::read(&file)?;
    refuse_main_config(&current.target, &home)?;
    let old = current.text.clone().unwrap_or_default();
    let new = section::replace(&old, name, body).with_context(|| format!("updating {}", file.display()))?;
    if current.text.as_deref() == Some(new.as_str()) {
        note(&format!("{}: up to date ({hosts} hosts), not rewritten", file.display()));
    } else {
        user_file::replace(&current.target, &new)?;
        let _ = std::io::stderr().write_all(diff::unified(&old, &new, &file.display().to_string()).as_bytes());
        note(&format!("{}: wrote {hosts} hosts in section {name:?}", file.display()));
    }
    let user_config = home.join(".ssh").join("config");
    let text = std::fs::read_to_string(&user_config).unwrap_or_default();
    let how = [&file, &current.target].iter().map(|f| include::included(&text, f, &home)).max_by_key(|i| match i {
        Included::No => 0,
        Included::InsideBlock => 1,
        Included::Everywhere => 2,
    });
    match how {
        Some(Included::Everywhere) => {}
        Some(Included::InsideBlock) => note(&format!(
            "the Include of {} in {} is inside a Host or Match block: move it above the first Host line",
            file.display(),
            user_config.display()
        )),
        _ => note(&format!(
            "ssh reads {} only if {} includes it: add `Include {}` at its top, before any Host line",
            file.display(),
            user_config.display(),
            file.display()
        )),
    }
    Ok(())
}

/// `--write` never edits the user's or the system's main ssh configuration.
fn refuse_main_config(file: &Path, home: &Path) -> anyhow::Result<()> {
    let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    };
    for main in [home.join(".ssh").join("config"), PathBuf::from("/etc/ssh/ssh_config")] {
        if same(file, &main) {
            bail!(
                "not writing {}: it is ssh's main configuration. Write to an Include file instead (e.g. --write \
                 ~/.ssh/ec2-broker.conf) and add `Include ~/.ssh/ec2-broker.conf` at the top of ~/.ssh/config",
                file.display()
            );
        }
    }
    Ok(())
}

/// `ec2-broker` when that name on PATH is this program, else this program's full path.
fn default_broker() -> String {
    let Ok(exe) = std::env::current_exe() else { return "ec2-broker".into() };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("ec2-broker")).find(|c| c.is_file()))
        .unwrap_or_default();
    let same = on_path.and_then(|p| std::fs::canonicalize(p).ok()) == std::fs::canonicalize(&exe).ok();
    if same { "ec2-broker".into() } else { exe.display().to_string() }
}

/// Where `proxy` writes key files, as an absolute path: ssh expands `~` from the password
/// database, the broker from `HOME`, and the two must name the same directory.
fn key_dir_for_config() -> anyhow::Result<String> {
    let dir = crate::key_file::default_dir().context("no home directory: set HOME")?;
    Ok(dir.display().to_string())
}

fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "ec2-broker: {}", crate::inventory::report::printable(text));
}
