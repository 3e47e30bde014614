//! Download: list the source with one ssh call, then per file N streams, each an ssh running
//! [`remote::read_script`] over its share of the ranges, written at their offsets into
//! `DST.ec2-broker-part` (positional writes on one open file) and hashed as they arrive.

use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::journal::{self, JOURNAL_SUFFIX, Journal, PART_SUFFIX, Start};
use super::plan::{self, Range};
use super::remote::{self, Listing, RemoteFile};
use super::{CopyError, Options, hex, notice};
use crate::cache::private_file::PrivateDir;
use crate::output::progress::Progress;

/// Bytes read from ssh per read call.
const CHUNK: usize = 256 << 10;

/// Copies `HOST:REMOTE` to `local`.
pub(crate) async fn run(options: &Options, host: &str, remote: &str, local: &Path) -> Result<(), CopyError> {
    let listing = remote::parse_listing(remote, &options.ssh.output(host, &remote::list_script(remote)).await?)?;
    let local_is_dir = local.is_dir();
    match listing {
        Listing::File(f) => {
            let dst = plan::landing(local, local_is_dir, remote)?;
            file(options, host, &f, &dst).await
        }
        Listing::Dir(_) if !options.recursive => Err(CopyError::IsDirectory(format!("{host}:{remote}"))),
        Listing::Dir(files) => {
            let root = plan::landing(local, local_is_dir, remote)?;
            std::fs::create_dir_all(&root).map_err(CopyError::local("creating directory", &root))?;
            for f in &files {
                let rel = plan::relative_inside(remote, &f.path)?;
                let dst = root.join(&rel);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(CopyError::local("creating directory", parent))?;
                }
                file(options, host, f, &dst).await?;
            }
            Ok(())
        }
    }
}

/// One remote file to `dst`, resuming an interrupted copy of the same source.
async fn file(options: &Options, host: &str, source: &RemoteFile, dst: &Path) -> Result<(), CopyError> {
    let label = format!("{host}:{}", source.path);
    let cut = plan::cut(source.size, options.streams, options.range_size);
    let ranges = plan::ranges(source.size, cut.range_size);
    let (dir, name) = destination(dst)?;
    let (part_name, journal_name) = (format!("{name}{PART_SUFFIX}"), format!("{name}{JOURNAL_SUFFIX}"));
    let mut journal = Journal::new(label.clone(), source.size, source.mtime, cut.range_size);

    let found = dir.read_own(&journal_name)?;
    let existing = dir.open_own(&part_name)?;
    let part_len = match &existing {
        Some(f) => Some(f.metadata().map_err(CopyError::local("reading the status of", &dir.join(&part_name)))?.len()),
        None => None,
    };
    let part = match journal::decide(found.as_deref(), &journal, part_len, ranges.len()) {
        Start::Resume(done) => {
            notice(&format!("{label}: resuming: {} of {} ranges are already here", done.len(), ranges.len()));
            journal.done = done;
            existing.ok_or_else(|| {
                CopyError::local("opening", &dir.join(&part_name))(std::io::ErrorKind::NotFound.into())
            })?
        }
        start => {
            if let Start::Restart(why) = start {
                notice(&format!("{label}: {why}: starting again"));
            }
            drop(existing);
            dir.remove(&part_name)?;
            let f = dir
                .create_new(&part_name, 0o600)
                .map_err(|e| CopyError::local("creating", &dir.join(&part_name))(e.into()))?;
            f.set_len(source.size).map_err(CopyError::local("sizing", &dir.join(&part_name)))?;
            drop(f);
            dir.write_atomic(&journal_name, journal.to_text().as_bytes())?;
            // Opened again read-write (it was created write-only): the whole file is read back.
            dir.open_own(&part_name)?.ok_or_else(|| {
                CopyError::local("opening", &dir.join(&part_name))(std::io::ErrorKind::NotFound.into())
            })?
        }
    };
    let part = Arc::new(part);
    let pending: Vec<Range> = ranges.iter().filter(|r| !journal.done.contains(&r.index)).copied().collect();
    let streams = plan::deal(&pending, cut.streams);
    tracing::info!(file = %label, ranges = ranges.len(), pending = pending.len(), streams = streams.len(), "copy starting");

    let (tx, mut rx) = mpsc::unbounded_channel::<(u32, String)>();
    let mut tasks = tokio::task::JoinSet::new();
    // The first stream also reports the whole file's checksum (not needed for one range: its
    // checksum is the file's; nor for an empty file).
    for (i, share) in streams.iter().cloned().enumerate() {
        let job = Pull { options: options.clone(), host: host.into(), path: source.path.clone(), label: label.clone() };
        tasks.spawn(job.run(share, i == 0 && ranges.len() > 1, part.clone(), tx.clone()));
    }
    drop(tx);
    let progress = Progress::start(&label, pending.len());
    let mut last_sum = None;
    while let Some((index, sum)) = rx.recv().await {
        part.sync_data().map_err(CopyError::local("writing", &dir.join(&part_name)))?;
        journal.done.insert(index);
        dir.write_atomic(&journal_name, journal.to_text().as_bytes())?;
        tracing::info!(file = %label, range = index, "range verified and saved");
        progress.step();
        last_sum = Some(sum);
    }
    drop(progress);
    let mut errors = Vec::new();
    let mut whole = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(sum)) => whole = whole.or(sum),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(CopyError::local("running a stream for", dst)(std::io::Error::other(e))),
        }
    }
    CopyError::streams_done(&label, errors, streams.len(), journal.done.len(), ranges.len())?;

    // Every range is in: compare the whole file, then put it in place.
    let local_sum = whole_sum(part.clone(), &dir.join(&part_name)).await?;
    let remote_sum = match (whole, last_sum) {
        (Some(sum), _) => sum,
        (None, Some(sum)) if ranges.len() == 1 => sum,
        (None, _) if ranges.is_empty() => hex(&Sha256::digest(b"")),
        // Every range was already here (an earlier run stopped before the end): ask.
        (None, _) => {
            let out = options.ssh.output(host, &remote::sum_script(&source.path)).await?;
            remote::parse_sum(&out)
                .ok_or_else(|| CopyError::Listing(format!("sha256sum printed {:?}", crate::text::printable(&out))))?
        }
    };
    if remote_sum != local_sum {
        dir.remove(&journal_name)?;
        dir.remove(&part_name)?;
        return Err(CopyError::FileMismatch { file: label });
    }
    part.sync_all().map_err(CopyError::local("writing", &dir.join(&part_name)))?;
    part.set_permissions(std::fs::Permissions::from_mode(source.mode & 0o777))
        .map_err(CopyError::local("setting the mode of", &dir.join(&part_name)))?;
    dir.rename(&part_name, &name)?;
    dir.remove(&journal_name)?;
    Ok(())
}

/// The destination's directory (opened once) and file name.
fn destination(dst: &Path) -> Result<(PrivateDir, String), CopyError> {
    let name = dst
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CopyError::Usage(format!("{}: name a destination file", dst.display())))?
        .to_string();
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = PrivateDir::open_destination(parent)?
        .ok_or_else(|| CopyError::local("opening directory", parent)(std::io::ErrorKind::NotFound.into()))?;
    Ok((dir, name))
}

/// SHA-256 of the part file, read on a blocking thread.
async fn whole_sum(part: Arc<File>, path: &Path) -> Result<String, CopyError> {
    let sum = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0; 1 << 20];
        let mut offset = 0;
        loop {
            let n = part.read_at(&mut buf, offset)?;
            if n == 0 {
                return Ok(hex(&hasher.finalize()));
            }
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    sum.map_err(CopyError::local("reading", path))
}

/// One stream's job.
struct Pull {
    options: Options,
    host: String,
    path: String,
    label: String,
}

impl Pull {
    /// Runs ssh over `share`, writing each range at its offset and sending `(index, checksum)`
    /// once its checksum matches the instance's.
    /// With `whole`, the stream also asks for the whole file's checksum and returns it.
    async fn run(
        self,
        share: Vec<Range>,
        whole: bool,
        part: Arc<File>,
        done: mpsc::UnboundedSender<(u32, String)>,
    ) -> Result<Option<String>, CopyError> {
        let ssh = &self.options.ssh;
        let mut child = ssh
            .command(&self.host, &remote::read_script(&self.path, &share, whole))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ssh.spawn_error(e))?;
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ssh.spawn_error(std::io::ErrorKind::BrokenPipe.into()));
        };
        let (sums_tx, mut sums) = mpsc::unbounded_channel();
        let errors = tokio::spawn(read_stderr(stderr, sums_tx));
        let mut buf = vec![0; CHUNK];
        let mut outcome = Ok(());
        let mut verified = 0;
        'ranges: for r in &share {
            let mut hasher = Sha256::new();
            let mut at = 0u64;
            while at < r.len {
                let want = usize::try_from(r.len - at).unwrap_or(CHUNK).min(CHUNK);
                let n = match stdout.read(&mut buf[..want]).await {
                    Ok(0) | Err(_) => break 'ranges,
                    Ok(n) => n,
                };
                part.write_all_at(&buf[..n], r.offset + at)
                    .map_err(CopyError::local("writing", Path::new(&self.label)))?;
                hasher.update(&buf[..n]);
                at += n as u64;
            }
            let local = hex(&hasher.finalize());
            match sums.recv().await {
                Some((index, sum)) if index == r.index && sum == local => {
                    let _ = done.send((index, sum));
                    verified += 1;
                }
                Some(_) => {
                    outcome = Err(CopyError::RangeMismatch { file: self.label.clone(), index: r.index });
                    break;
                }
                None => break,
            }
        }
        drop(stdout);
        let status = child.wait().await.map_err(|e| ssh.spawn_error(e))?;
        let (stderr, file_sum) = errors.await.unwrap_or_default();
        outcome?;
        super::ssh::check(&self.host, status, &stderr)?;
        if verified != share.len() || (whole && file_sum.is_none()) {
            return Err(CopyError::Short { host: self.host, path: self.path });
        }
        Ok(file_sum)
    }
}

/// Reads ssh's stderr: range checksums go to `sums`; the rest (for error messages) and the
/// whole file's checksum, if sent, are returned.
async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    sums: mpsc::UnboundedSender<(u32, String)>,
) -> (String, Option<String>) {
    let mut lines = BufReader::new(stderr).lines();
    let (mut rest, mut file_sum) = (String::new(), None);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(sum) = remote::parse_file_line(&line) {
            file_sum = Some(sum);
            continue;
        }
        match remote::parse_range_line(&line) {
            Some(sum) => {
                let _ = sums.send(sum);
            }
            None if rest.len() < 16 << 10 => {
                rest.push_str(&line);
                rest.push('\n');
            }
            None => {}
        }
    }
    (rest, file_sum)
}
