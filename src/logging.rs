//! Logging: stderr or a log file, never stdout (stdout is ssh's byte stream in `proxy`).
//!
//! Level: warnings by default; `-v` info, `-vv` debug, `-vvv` trace (dependencies at debug).
//! `EC2_BROKER_LOG=info|debug|trace` does the same without editing ssh_config.

use std::fs::File;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber.
pub fn init(verbose: u8, log_file: Option<&Path>) -> anyhow::Result<()> {
    let env_level = std::env::var("EC2_BROKER_LOG").ok().map(|v| level_from_name(&v));
    let ours = env_level.unwrap_or(0).max(verbose);
    let targets = targets_for(ours);
    let (writer, ansi) = match log_file {
        Some(path) => {
            let file = open_log_file(path).with_context(|| format!("opening log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi).with_target(ours >= 3);
    // Ignore a second init (tests, or a library user who set up their own subscriber).
    let _ = tracing_subscriber::registry().with(layer.with_filter(targets)).try_init();
    Ok(())
}

/// Opens the log file for appending: a new one is created 0600 (logs name hosts, instances and
/// users), an existing one keeps its mode, and a symbolic link is not followed.
fn open_log_file(path: &Path) -> anyhow::Result<File> {
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::LOOP) => anyhow::bail!("it is a symbolic link, which is not followed: name the file itself"),
        Err(e) => Err(std::io::Error::from(e).into()),
    }
}

/// Maps a verbosity count to per-target filters.
fn targets_for(verbosity: u8) -> Targets {
    let (ours, deps) = match verbosity {
        0 => (LevelFilter::WARN, LevelFilter::ERROR),
        1 => (LevelFilter::INFO, LevelFilter::ERROR),
        2 => (LevelFilter::DEBUG, LevelFilter::WARN),
        _ => (LevelFilter::TRACE, LevelFilter::DEBUG),
    };
    Targets::new().with_target("ec2_broker", ours).with_default(deps)
}

fn level_from_name(name: &str) -> u8 {
    match name.trim().to_ascii_lowercase().as_str() {
        "info" | "1" => 1,
        "debug" | "2" => 2,
        "trace" | "3" => 3,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(level_from_name("DEBUG"), 2);
        assert_eq!(level_from_name(" info"), 1);
        assert_eq!(level_from_name("trace"), 3);
        assert_eq!(level_from_name("warn"), 0);
        assert_eq!(level_from_name("bogus"), 0);
    }

    /// See: issue 14. The old log file was created with the umask's mode (0644 here).
    #[test]
    fn issue_14_a_new_log_file_is_private_and_an_existing_one_keeps_its_mode() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;

        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = tmp.path().join("new.log");
        open_log_file(&new).unwrap().write_all(b"one\n").unwrap();
        assert_eq!(mode(&new), 0o600);

        let existing = tmp.path().join("existing.log");
        std::fs::write(&existing, "old\n").unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_log_file(&existing).unwrap().write_all(b"new\n").unwrap();
        assert_eq!(mode(&existing), 0o644, "not the broker's file: its mode stays");
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old\nnew\n", "appended");

        let link = tmp.path().join("link.log");
        std::os::unix::fs::symlink(&existing, &link).unwrap();
        let e = open_log_file(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old\nnew\n");
    }
}
