//! Logging: stderr or a log file, never stdout (stdout is ssh's byte stream in `proxy`).
//!
//! Level: warnings by default; `-v` info, `-vv` debug, `-vvv` trace (dependencies at debug).
//! `EC2_BROKER_LOG=info|debug|trace` does the same without editing ssh_config.
//!
//! # Secrets
//!
//! No level may show a credential, a session token, the SSM `TokenValue`, a stream URL or a
//! presigned URL. Two layers, because each covers what the other cannot:
//!
//! 1. **Dependency caps** (`CAPS` in `targets_for`), from reading their sources. At TRACE the
//!    AWS SDK logs every request with its `Authorization` and `x-amz-security-token` headers and
//!    every response body (`aws-smithy-runtime`'s orchestrator), the resolved identity
//!    (`…::orchestrator::auth`) and the canonical request of a presigned URL, whose query holds
//!    `X-Amz-Security-Token` (`aws-sigv4`): every AWS SDK crate is capped at DEBUG, where it logs
//!    endpoints, retries and timeouts. `aws-config` logs a failed credential provider's
//!    `DisplayErrorContext` (a raw STS or SSO answer) at DEBUG: capped at INFO (its INFO lines
//!    show an access key id at most). `hyper`, `hyper-util` and `h2` log addresses and frame
//!    headers without header values at DEBUG: capped at DEBUG. tungstenite logs the request URI
//!    (a presigned URL) at DEBUG and the whole upgrade request at TRACE; rustls and russh log
//!    handshakes. Those log through the `log` crate, which this subscriber never bridges (no
//!    `tracing-log`), and are capped at INFO should a bridge ever be added. The caps are the
//!    guarantee for secrets the process never registered (fresh credentials inside an answer).
//!    What they leave at DEBUG still names an access key id: `aws-smithy-runtime` logs the
//!    endpoint parameters with the resolved identity (`Credentials` prints the key id, hides the
//!    secret and has no token field); the second layer removes it.
//! 2. **A scrubbing writer** ([`redact::Scrubbed`]): every formatted line passes through
//!    [`redact::scrub`], which removes the credentials the SDK loaded and the SSM tokens (raw and
//!    percent-encoded: registered when they are obtained) and the values of credential-shaped
//!    fields. It covers our own TRACE lines (the SDK's error context is logged scrubbed at TRACE)
//!    and whatever a future dependency version adds below its cap.

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

use crate::redact;

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
        None => (
            BoxMakeWriter::new(std::io::stderr),
            colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")),
        ),
    };
    let writer = redact::Scrubbed(writer);
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

/// Dependencies that log secrets below some level, and the most verbose level each may reach
/// (see the module docs for what each logs).
const CAPS: [(&str, LevelFilter); 23] = [
    ("aws_config", LevelFilter::INFO),
    ("aws_credential_types", LevelFilter::DEBUG),
    ("aws_runtime", LevelFilter::DEBUG),
    ("aws_sigv4", LevelFilter::DEBUG),
    ("aws_smithy_runtime", LevelFilter::DEBUG),
    ("aws_smithy_runtime_api", LevelFilter::DEBUG),
    ("aws_smithy_http_client", LevelFilter::DEBUG),
    ("aws_smithy_http", LevelFilter::DEBUG),
    ("aws_smithy_types", LevelFilter::DEBUG),
    ("aws_types", LevelFilter::DEBUG),
    ("hyper_rustls", LevelFilter::DEBUG),
    ("aws_sdk_ec2instanceconnect", LevelFilter::DEBUG),
    ("aws_sdk_ssm", LevelFilter::DEBUG),
    ("aws_sdk_sts", LevelFilter::DEBUG),
    ("aws_sdk_sso", LevelFilter::DEBUG),
    ("aws_sdk_ssooidc", LevelFilter::DEBUG),
    ("hyper", LevelFilter::DEBUG),
    ("hyper_util", LevelFilter::DEBUG),
    ("h2", LevelFilter::DEBUG),
    ("tungstenite", LevelFilter::INFO),
    ("tokio_tungstenite", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
    ("russh", LevelFilter::INFO),
];

/// Whether log lines on stderr get colours: only on a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (no-color.org).
fn colours(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Maps a verbosity count to per-target filters: ours, every dependency's default, and the
/// [`CAPS`] no verbosity lifts.
fn targets_for(verbosity: u8) -> Targets {
    let (ours, deps) = match verbosity {
        0 => (LevelFilter::WARN, LevelFilter::ERROR),
        1 => (LevelFilter::INFO, LevelFilter::ERROR),
        2 => (LevelFilter::DEBUG, LevelFilter::WARN),
        _ => (LevelFilter::TRACE, LevelFilter::DEBUG),
    };
    let capped = CAPS.iter().map(|&(target, cap)| (target, deps.min(cap)));
    Targets::new().with_target("ec2_broker", ours).with_targets(capped).with_default(deps)
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
    fn no_color_turns_colours_off() {
        assert!(colours(true, None));
        assert!(!colours(true, Some("1".into())));
        assert!(colours(true, Some("".into())), "an empty NO_COLOR is unset");
        assert!(!colours(false, None), "never into a pipe or file");
    }

    // See: issue 14 (§3): no verbosity lets a dependency log below its cap.
    #[test]
    fn dependencies_never_reach_the_levels_that_log_secrets() {
        use tracing::Level;
        for verbosity in 0..=5 {
            let t = targets_for(verbosity);
            for target in [
                "aws_smithy_runtime::client::orchestrator",
                "aws_smithy_runtime::client::orchestrator::http",
                "aws_smithy_runtime::client::orchestrator::auth",
                "aws_sigv4::http_request::sign",
                "aws_runtime::auth::sigv4",
                "aws_sdk_sts::operation::assume_role",
                "h2::codec::framed_write",
                "hyper_util::client::legacy::connect::http",
            ] {
                assert!(!t.would_enable(target, &Level::TRACE), "{target} at trace with -{verbosity}v");
            }
            for target in ["aws_config::meta::credentials::chain", "tungstenite::client", "tokio_tungstenite", "rustls"]
            {
                assert!(!t.would_enable(target, &Level::DEBUG), "{target} at debug with -{verbosity}v");
            }
        }
        let t = targets_for(3);
        assert!(t.would_enable("ec2_broker::aws::sdk_error", &Level::TRACE));
        assert!(t.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(t.would_enable("aws_config::profile", &Level::INFO));
        assert!(!targets_for(0).would_enable("aws_config::profile", &Level::INFO));
    }

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
