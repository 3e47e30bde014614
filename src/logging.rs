//! Logging: stderr or a log file, never stdout (stdout is ssh's byte stream in `proxy`).
//!
//! Level: warnings by default; `-v` info, `-vv` debug, `-vvv` trace (dependencies at debug).
//! `EC2_BROKER_LOG=info|debug|trace` does the same without editing ssh_config.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
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
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi).with_target(ours >= 3);
    // Ignore a second init (tests, or a library user who set up their own subscriber).
    let _ = tracing_subscriber::registry().with(layer.with_filter(targets)).try_init();
    Ok(())
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
}
