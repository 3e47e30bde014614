//! `ec2-broker cp`: files to and from an instance over several ssh connections at once.
//!
//! ```text
//!  cmd::cp ─▶ plan (operands, ranges, streams) ─▶ download | upload
//!                                                   │  N × `ssh [-F] [-l] [-i] HOST sh -c '…'`
//!                                                   ▼  (ssh_config's ProxyCommand picks the route)
//!             remote (the sh scripts: list, dd ranges + sha256sum, finish) ◀─▶ journal (resume)
//! ```
//!
//! Why several connections: through Session Manager the agent paces every session on its own
//! (1 KiB per millisecond, `ssm-data-channel.md` §9.4), so one session cannot go faster and N
//! sessions move about N times as much. Each stream is the user's own `ssh` binary, so keys,
//! known_hosts and the route stay ssh's and the broker's ProxyCommand's business; `cp` never
//! touches a key.
//!
//! - [`plan`]: operands, range sizes, which stream carries which range (pure);
//! - [`remote`]: the commands run on the instance and how their answers are read (pure);
//! - [`journal`]: the resume journal and the decision to resume or restart (pure);
//! - [`ssh`]: spawning ssh and reading what it says;
//! - [`download`] and [`upload`]: the drivers, one tokio task per stream.
//!
//! A file becomes its destination only after the whole file's SHA-256 matches on both sides:
//! until then it is `DST.ec2-broker-part` (0600), so a destination is never half written.

pub(crate) mod download;
pub(crate) mod journal;
pub(crate) mod plan;
pub(crate) mod remote;
pub(crate) mod ssh;
pub(crate) mod upload;

use std::path::PathBuf;

pub(crate) use ssh::Ssh;

/// What the user asked, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How ssh is run.
    pub(crate) ssh: Ssh,
    /// Streams to open at most per file.
    pub(crate) streams: u32,
    /// `--range-size`, when given.
    pub(crate) range_size: Option<u64>,
    /// `-r`.
    pub(crate) recursive: bool,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// The operands or options do not make a copy.
    #[error("{0}")]
    Usage(String),
    /// The remote source does not exist.
    #[error("{0}: no such file or directory on the instance")]
    Missing(String),
    /// The remote source cannot be read by the login user.
    #[error("{0}: permission denied on the instance: copy it as a user who can read it (-l USER)")]
    Unreadable(String),
    /// The remote source is neither a file nor a directory.
    #[error("{0}: not a regular file or directory")]
    NotAFile(String),
    /// A directory was given without `-r`.
    #[error("{0} is a directory: add -r to copy it and everything in it")]
    IsDirectory(String),
    /// The instance's answer to the listing could not be read.
    #[error("reading the instance's file listing: {0}")]
    Listing(String),
    /// ssh itself failed (exit 255): the route did not open or the connection broke.
    #[error("ssh to {host} failed: {detail}: check the route with `ec2-broker doctor {host}`")]
    Ssh {
        /// The host as given.
        host: String,
        /// ssh's last words, made printable.
        detail: String,
    },
    /// A command on the instance failed.
    #[error("on {host}: {detail} (exit status {code})")]
    Remote {
        /// The host as given.
        host: String,
        /// The exit status.
        code: i32,
        /// Its stderr, made printable.
        detail: String,
    },
    /// The instance sent fewer bytes or checksums than asked, and exited 0.
    #[error("{host}:{path} ended early (did the file shrink?): run the command again")]
    Short {
        /// The host as given.
        host: String,
        /// The remote file.
        path: String,
    },
    /// Running ssh failed.
    #[error("running {program}")]
    Spawn {
        /// The ssh program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A range's checksums differ: the file changed while it was read, or the bytes were damaged.
    #[error("range {index} of {file}: the checksums on the two sides differ: run the command again")]
    RangeMismatch {
        /// The file.
        file: String,
        /// The range.
        index: u32,
    },
    /// The whole file's checksums differ.
    #[error(
        "{file}: the whole file's checksums differ (the source changed during the copy?): nothing was kept; run the command again"
    )]
    FileMismatch {
        /// The file.
        file: String,
    },
    /// Some streams failed: the copy can be resumed.
    #[error(
        "{file}: {failed} of {streams} streams failed, {done} of {total} ranges are saved: run the same command again to send the rest"
    )]
    Interrupted {
        /// The file.
        file: String,
        /// Streams that failed.
        failed: usize,
        /// Streams used.
        streams: usize,
        /// Ranges verified and journalled.
        done: usize,
        /// Ranges in the file.
        total: usize,
        /// The first stream's error.
        #[source]
        first: Box<CopyError>,
    },
    /// A local file could not be read or written.
    #[error("{action} {path}")]
    Local {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The part file or journal beside the destination cannot be used.
    #[error(transparent)]
    Private(#[from] crate::cache::private_file::PrivateFileError),
}

impl CopyError {
    /// `Ok` when no stream failed, else [`CopyError::Interrupted`] with the first failure: how
    /// both directions end their streams.
    pub(crate) fn streams_done(
        file: &str,
        mut errors: Vec<CopyError>,
        streams: usize,
        done: usize,
        total: usize,
    ) -> Result<(), CopyError> {
        if errors.is_empty() {
            return Ok(());
        }
        Err(CopyError::Interrupted {
            file: file.to_string(),
            failed: errors.len(),
            streams,
            done,
            total,
            first: Box::new(errors.remove(0)),
        })
    }

    /// A [`CopyError::Local`] maker for `map_err`.
    pub(crate) fn local(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CopyError {
        let path = path.to_path_buf();
        move |source| CopyError::Local { action, path, source }
    }
}

/// Copies `source` to `destination` (the operands as typed).
pub(crate) async fn run(source: &str, destination: &str, options: &Options) -> Result<(), CopyError> {
    match plan::direction(plan::Side::parse(source)?, plan::Side::parse(destination)?)? {
        plan::Direction::Download { host, remote, local } => download::run(options, &host, &remote, &local).await,
        plan::Direction::Upload { local, host, remote } => upload::run(options, &local, &host, &remote).await,
    }
}

/// A line for the user on stderr (not a log line: logs may go to a file).
pub(crate) fn notice(text: &str) {
    eprintln!("ec2-broker: {}", crate::text::printable(text));
}

/// Hex of a SHA-256 digest.
pub(crate) fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
