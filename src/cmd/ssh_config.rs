//! `ec2-broker ssh-config`: Host blocks for the listed instances, printed or kept in a marked
//! section of an Include file (`--write`), with the changes shown on stderr.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cache::private_file::{DirPolicy, Existing, PrivateDir};
use crate::cli::SshConfigArgs;
use crate::inventory::filter::Filters;
use crate::output;
use crate::ssh_config_gen::block::{self, Options};
use crate::ssh_config_gen::include::{self, Included};
use crate::ssh_config_gen::{diff, section, section_name};

/// Runs `ssh-config`; exit code 0, or 1 when some Region could not be listed (nothing is then
/// written, so no host is dropped from the file by a failed call).
pub(crate) async fn run(args: SshConfigArgs) -> anyhow::Result<u8> {
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
        key_dir: crate::ssh_config_gen::key_dir().context("no home directory: set HOME")?,
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
    let include = IncludeFile::open(&file)?;
    refuse_main_config(&include.target, &home)?;
    let old = include.current.as_ref().map(|(text, _)| text.clone()).unwrap_or_default();
    let new = section::replace(&old, name, body).with_context(|| format!("updating {}", file.display()))?;
    if include.current.is_some() && old == new {
        note(&format!("{}: up to date ({hosts} hosts), not rewritten", file.display()));
    } else {
        include.replace(&new)?;
        let _ = std::io::stderr().write_all(diff::unified(&old, &new, &file.display().to_string()).as_bytes());
        note(&format!("{}: wrote {hosts} hosts in section {name:?}", file.display()));
    }
    let user_config = home.join(".ssh").join("config");
    let text = fs::read_to_string(&user_config).unwrap_or_default();
    let how = [&file, &include.target].iter().map(|f| include::included(&text, f, &home)).max_by_key(|i| match i {
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

/// The Include file: the file itself (a symbolic link is followed, so the link stays a link), in
/// a directory of the user's that others cannot write, held open so that the file lands in the
/// directory that was checked.
struct IncludeFile {
    dir: PrivateDir,
    name: String,
    target: PathBuf,
    /// Its text, mode, owner; `None` when it does not exist yet.
    current: Option<(String, fs::Metadata)>,
}

impl IncludeFile {
    fn open(path: &Path) -> anyhow::Result<IncludeFile> {
        let target = match fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
            Err(e) => return Err(e).with_context(|| format!("resolving {}", path.display())),
        };
        let (Some(dir_path), Some(name)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) else {
            bail!("{} names no file", path.display());
        };
        let dir = PrivateDir::open(dir_path, DirPolicy::NoOtherWriters)?
            .with_context(|| format!("{} does not exist: create it first (mode 0700)", dir_path.display()))?;
        let current = match dir.open_existing(name)? {
            None => None,
            Some(Existing::Other(what)) => bail!("{} is {what}, not a file ssh can include", target.display()),
            Some(Existing::File { mut file, meta }) => {
                let mut text = String::new();
                file.read_to_string(&mut text).with_context(|| format!("reading {}", target.display()))?;
                Some((text, meta))
            }
        };
        Ok(IncludeFile { dir, name: name.to_string(), target, current })
    }

    /// Replaces the file with `text` (a temporary file with a random name, `O_EXCL|O_NOFOLLOW`,
    /// given the old file's owner and mode, synced, renamed over it); a new file is 0600.
    fn replace(&self, text: &str) -> anyhow::Result<()> {
        let (mut file, tmp) = self.dir.create_temp(&self.name, 0o600)?;
        let mut fill = || -> std::io::Result<()> {
            file.write_all(text.as_bytes())?;
            if let Some((_, meta)) = &self.current {
                if (meta.uid(), meta.gid()) != (file.metadata()?.uid(), file.metadata()?.gid()) {
                    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
                }
                // Our own temporary file: its mode is ours to set.
                file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            }
            file.sync_all()
        };
        let written = fill()
            .with_context(|| format!("writing {}", self.dir.join(&tmp).display()))
            .and_then(|()| Ok(self.dir.rename(&tmp, &self.name)?));
        if written.is_err() {
            let _ = self.dir.remove(&tmp);
        }
        written
    }
}

/// `--write` never edits the user's or the system's main ssh configuration.
fn refuse_main_config(file: &Path, home: &Path) -> anyhow::Result<()> {
    let same = |a: &Path, b: &Path| match (fs::metadata(a), fs::metadata(b)) {
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
    let same = on_path.and_then(|p| fs::canonicalize(p).ok()) == fs::canonicalize(&exe).ok();
    if same { "ec2-broker".into() } else { exe.display().to_string() }
}

fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "ec2-broker: {}", crate::text::printable(text));
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn private_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn a_new_include_file_is_private_and_no_temporary_is_left() {
        let d = private_dir();
        let f = d.path().join("ec2.conf");
        let include = IncludeFile::open(&f).unwrap();
        assert!(include.current.is_none());
        include.replace("Host a\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "Host a\n");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn mode_is_kept_and_a_symlink_stays_a_symlink() {
        let d = private_dir();
        let real = d.path().join("dotfiles-ec2.conf");
        fs::write(&real, "old\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.path().join("ec2.conf");
        symlink(&real, &link).unwrap();
        let include = IncludeFile::open(&link).unwrap();
        assert_eq!(include.target, fs::canonicalize(&real).unwrap());
        assert_eq!(include.current.as_ref().map(|(t, _)| t.as_str()), Some("old\n"));
        include.replace("new\n").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is kept");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new\n");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn shared_directories_and_non_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = IncludeFile::open(&d.path().join("f")).err().expect("refused");
        assert!(format!("{err:#}").contains("writable"), "{err:#}");
        let d = private_dir();
        fs::create_dir(d.path().join("sub")).unwrap();
        assert!(IncludeFile::open(&d.path().join("sub")).is_err());
    }
}
