//! Upload: the destination is looked at with one ssh call, the part files (`PATH.ec2-broker-part`,
//! 0600) are made with one more, then per file N streams, each an ssh running
//! [`remote::write_script`] fed its share of the ranges on stdin; a last call compares the whole
//! file's SHA-256, sets the mode and renames the part file into place.
//!
//! Not resumable yet: a failed upload starts again (the part file is emptied).

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::journal::PART_SUFFIX;
use super::plan::{self, Range};
use super::remote;
use super::{CopyError, Options, hex};
use crate::output::progress::Progress;

/// Bytes read from the local file per write to ssh.
const CHUNK: usize = 256 << 10;

/// One local file and where it goes.
struct Item {
    local: PathBuf,
    remote: String,
    size: u64,
    mode: u32,
}

/// Copies `local` to `HOST:REMOTE`.
pub(crate) async fn run(options: &Options, local: &Path, host: &str, remote: &str) -> Result<(), CopyError> {
    let meta = std::fs::metadata(local).map_err(CopyError::local("reading", local))?;
    if meta.is_dir() && !options.recursive {
        return Err(CopyError::IsDirectory(local.display().to_string()));
    }
    let local_name = local.to_str().ok_or_else(|| CopyError::Usage(format!("{}: not UTF-8", local.display())))?;
    let kind = options.ssh.output(host, &remote::stat_dest_script(remote)).await?;
    let root = plan::landing(Path::new(remote), kind.trim() == "D", local_name)?;
    let root = root.to_str().unwrap_or(remote).to_string();
    let mut dirs = Vec::new();
    let mut items = Vec::new();
    if meta.is_dir() {
        dirs.push(root.clone());
        walk(local, &root, &mut dirs, &mut items)?;
    } else {
        items.push(Item { local: local.to_path_buf(), remote: root, size: meta.len(), mode: meta.mode() & 0o777 });
    }
    let parts: Vec<String> = items.iter().map(|i| format!("{}{PART_SUFFIX}", i.remote)).collect();
    options.ssh.output(host, &remote::prepare_script(&dirs, &parts, true)).await?;
    for item in &items {
        file(options, host, item).await?;
    }
    Ok(())
}

/// Every regular file and directory under `dir`, with its remote path under `root`; symbolic
/// links and other special files are left out with a warning.
fn walk(dir: &Path, root: &str, dirs: &mut Vec<String>, items: &mut Vec<Item>) -> Result<(), CopyError> {
    let entries = std::fs::read_dir(dir).map_err(CopyError::local("reading directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(CopyError::local("reading directory", dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!("{}: not UTF-8, left out", path.display());
            continue;
        };
        let remote = format!("{root}/{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(CopyError::local("reading", &path))?;
        if meta.is_dir() {
            dirs.push(remote.clone());
            walk(&path, &remote, dirs, items)?;
        } else if meta.is_file() {
            items.push(Item { local: path, remote, size: meta.len(), mode: meta.mode() & 0o777 });
        } else {
            tracing::warn!("{}: not a regular file, left out", path.display());
        }
    }
    Ok(())
}

/// One file: streams, then the whole-file check and the rename.
async fn file(options: &Options, host: &str, item: &Item) -> Result<(), CopyError> {
    let label = format!("{host}:{}", item.remote);
    let part_path = format!("{}{PART_SUFFIX}", item.remote);
    let file = Arc::new(File::open(&item.local).map_err(CopyError::local("opening", &item.local))?);
    let cut = plan::cut(item.size, options.streams, options.range_size);
    let ranges = plan::ranges(item.size, cut.range_size);
    let streams = plan::deal(&ranges, cut.streams);
    let local_sum = {
        let (file, path) = (file.clone(), item.local.clone());
        tokio::task::spawn_blocking(move || sum_file(&file))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(CopyError::local("reading", &path))?
    };
    let progress = Progress::start(&label, streams.len());
    let mut tasks = tokio::task::JoinSet::new();
    for share in streams.iter().cloned() {
        let push =
            Push { options: options.clone(), host: host.into(), part: part_path.clone(), local: item.local.clone() };
        tasks.spawn(push.run(share, file.clone()));
    }
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => progress.step(),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(CopyError::local("running a stream for", &item.local)(std::io::Error::other(e))),
        }
    }
    drop(progress);
    if !errors.is_empty() {
        return Err(CopyError::Interrupted {
            file: label,
            failed: errors.len(),
            streams: streams.len(),
            done: 0,
            total: ranges.len(),
            first: Box::new(errors.remove(0)),
        });
    }
    match options.ssh.output(host, &remote::finish_script(&part_path, &item.remote, &local_sum, item.mode)).await {
        Err(CopyError::Remote { code: 4, .. }) => Err(CopyError::FileMismatch { file: label }),
        other => other.map(drop),
    }
}

/// SHA-256 of a local file.
fn sum_file(file: &File) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    let mut offset = 0;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}

/// One stream's job.
struct Push {
    options: Options,
    host: String,
    part: String,
    local: PathBuf,
}

impl Push {
    /// Sends `share` to ssh's stdin, then checks each range's checksum from the instance.
    async fn run(self, share: Vec<Range>, file: Arc<File>) -> Result<(), CopyError> {
        let ssh = &self.options.ssh;
        let mut child = ssh
            .command(&self.host, &remote::write_script(&self.part, &share))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ssh.spawn_error(e))?;
        let (Some(mut stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
            return Err(ssh.spawn_error(std::io::ErrorKind::BrokenPipe.into()));
        };
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let (mut sums, mut rest) = (Vec::new(), String::new());
            while let Ok(Some(line)) = lines.next_line().await {
                match remote::parse_range_line(&line) {
                    Some(sum) => sums.push(sum),
                    None => rest += &(line + "\n"),
                }
            }
            (sums, rest)
        });
        let mut sent = Vec::new();
        let mut buf = vec![0; CHUNK];
        'ranges: for r in &share {
            let mut hasher = Sha256::new();
            let mut at = 0;
            while at < r.len {
                let want = usize::try_from(r.len - at).unwrap_or(CHUNK).min(CHUNK);
                let n =
                    file.read_at(&mut buf[..want], r.offset + at).map_err(CopyError::local("reading", &self.local))?;
                if n == 0 {
                    return Err(CopyError::local("reading", &self.local)(std::io::ErrorKind::UnexpectedEof.into()));
                }
                if stdin.write_all(&buf[..n]).await.is_err() {
                    break 'ranges;
                }
                hasher.update(&buf[..n]);
                at += n as u64;
            }
            sent.push((r.index, hex(&hasher.finalize())));
        }
        let _ = stdin.shutdown().await;
        drop(stdin);
        let status = child.wait().await.map_err(|e| ssh.spawn_error(e))?;
        let (sums, rest) = reader.await.unwrap_or_default();
        super::ssh::check(&self.host, status, &rest)?;
        for r in &share {
            let want = sent.iter().find(|s| s.0 == r.index);
            if want.is_none() || sums.iter().find(|s| s.0 == r.index) != want {
                return Err(CopyError::RangeMismatch { file: format!("{}:{}", self.host, self.part), index: r.index });
            }
        }
        Ok(())
    }
}
