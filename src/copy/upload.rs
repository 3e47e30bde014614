//! Upload: the destination is looked at with one ssh call, the part files (`PATH.ec2-broker-part`,
//! 0600, at the file's full length) are made with one more, then per file N streams, each an ssh running
//! [`remote::write_script`] fed its share of the ranges on stdin; a last call compares the whole
//! file's SHA-256, sets the mode and renames the part file into place.
//!
//! Resume: the journal lives in the local cache (`~/.cache/ec2-broker/copy/`, keyed by host and
//! remote path), since the destination is remote; a rerun finds it, checks the local source's
//! size and modification time and the remote part file's length (one more ssh call), and sends
//! only the ranges not yet verified.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::journal::{self, Journal, PART_SUFFIX, Start};
use super::plan::{self, Range};
use super::remote;
use super::{CopyError, Options, hex};
use crate::cache::private_file::{read_private, write_private};
use crate::output::progress::Progress;

/// Bytes read from the local file per write to ssh.
const CHUNK: usize = 256 << 10;

/// One local file and where it goes.
struct Item {
    local: PathBuf,
    remote: String,
    size: u64,
    mtime: i64,
    mode: u32,
}

impl Item {
    fn part(&self) -> String {
        format!("{}{PART_SUFFIX}", self.remote)
    }
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
        items.push(item(local.to_path_buf(), root, &meta));
    }

    // Journals of earlier uploads, and then the length of their part files on the instance.
    let journals: Vec<Option<(PathBuf, String)>> = items
        .iter()
        .map(|i| {
            let path = journal_path(host, &i.remote)?;
            let text = read_private(&path).ok().flatten()?;
            Some((path, text))
        })
        .collect();
    let with_journal: Vec<String> =
        items.iter().zip(&journals).filter(|(_, j)| j.is_some()).map(|(i, _)| i.part()).collect();
    let mut sizes = if with_journal.is_empty() {
        Vec::new()
    } else {
        let out = options.ssh.output(host, &remote::sizes_script(&with_journal)).await?;
        remote::parse_sizes(&out, with_journal.len())
    }
    .into_iter();
    let mut starts = Vec::new();
    for (item, found) in items.iter().zip(&journals) {
        let cut = plan::cut(item.size, options.streams, options.range_size);
        let count = plan::ranges(item.size, cut.range_size).len();
        let want = Journal::new(source_id(item), item.size, item.mtime, cut.range_size);
        let part_len = if found.is_some() { sizes.next().flatten() } else { None };
        starts.push(journal::decide(found.as_ref().map(|(_, t)| t.as_str()), &want, part_len, count));
    }
    let fresh: Vec<(String, u64)> = items
        .iter()
        .zip(&starts)
        .filter(|(_, s)| !matches!(s, Start::Resume(_)))
        .map(|(i, _)| (i.part(), i.size))
        .collect();
    options.ssh.output(host, &remote::prepare_script(&dirs, &fresh)).await?;
    for (item, start) in items.iter().zip(starts) {
        file(options, host, item, start).await?;
    }
    Ok(())
}

fn item(local: PathBuf, remote: String, meta: &std::fs::Metadata) -> Item {
    Item { local, remote, size: meta.len(), mtime: meta.mtime(), mode: meta.mode() & 0o777 }
}

/// What the journal records as the source of an upload.
fn source_id(item: &Item) -> String {
    format!("{} -> {}", item.local.display(), item.remote)
}

/// Where the journal of an upload to `host:remote` lives (none without a cache directory).
fn journal_path(host: &str, remote: &str) -> Option<PathBuf> {
    let key = hex(&Sha256::digest(format!("{host}\0{remote}").as_bytes()));
    dirs::cache_dir().map(|d| d.join("ec2-broker").join("copy").join(format!("{}.json", &key[..32])))
}

/// Every regular file and directory under `dir`, with its remote path under `root`; symbolic
/// links and other special files are left out with a warning.
fn walk(dir: &Path, root: &str, dirs: &mut Vec<String>, items: &mut Vec<Item>) -> Result<(), CopyError> {
    let entries = std::fs::read_dir(dir).map_err(CopyError::local("reading directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(CopyError::local("reading directory", dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            super::notice(&format!("{}: not UTF-8, left out", path.display()));
            continue;
        };
        let remote = format!("{root}/{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(CopyError::local("reading", &path))?;
        if meta.is_dir() {
            dirs.push(remote.clone());
            walk(&path, &remote, dirs, items)?;
        } else if meta.is_file() {
            items.push(item(path, remote, &meta));
        } else {
            super::notice(&format!("{}: not a regular file, left out", path.display()));
        }
    }
    Ok(())
}

/// One file: streams over the ranges not yet verified, then the whole-file check and the rename.
async fn file(options: &Options, host: &str, item: &Item, start: Start) -> Result<(), CopyError> {
    let label = format!("{host}:{}", item.remote);
    let part_path = item.part();
    let file = Arc::new(File::open(&item.local).map_err(CopyError::local("opening", &item.local))?);
    let cut = plan::cut(item.size, options.streams, options.range_size);
    let ranges = plan::ranges(item.size, cut.range_size);
    let mut journal = Journal::new(source_id(item), item.size, item.mtime, cut.range_size);
    match start {
        Start::Resume(done) => {
            super::notice(&format!("{label}: resuming: {} of {} ranges are already there", done.len(), ranges.len()));
            journal.done = done;
        }
        Start::Restart(why) => super::notice(&format!("{label}: {why}: starting again")),
        Start::Fresh => {}
    }
    let journal_file = journal_path(host, &item.remote);
    let save = |journal: &Journal| -> Result<(), CopyError> {
        match &journal_file {
            Some(path) => write_private(path, &journal.to_text()).map_err(CopyError::from),
            None => Ok(()),
        }
    };
    save(&journal)?;
    let (sums, local_sum) = {
        let (file, path, ranges) = (file.clone(), item.local.clone(), ranges.clone());
        tokio::task::spawn_blocking(move || sum_ranges(&file, &ranges))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(CopyError::local("reading", &path))?
    };
    let sums = Arc::new(sums);
    let pending: Vec<Range> = ranges.iter().filter(|r| !journal.done.contains(&r.index)).copied().collect();
    let streams = plan::deal(&pending, cut.streams);
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let mut tasks = tokio::task::JoinSet::new();
    for share in streams.iter().cloned() {
        let push =
            Push { options: options.clone(), host: host.into(), part: part_path.clone(), local: item.local.clone() };
        tasks.spawn(push.run(share, file.clone(), sums.clone(), tx.clone()));
    }
    drop(tx);
    let progress = Progress::start(&label, pending.len());
    while let Some(index) = rx.recv().await {
        journal.done.insert(index);
        save(&journal)?;
        tracing::info!(file = %label, range = index, "range verified and saved");
        progress.step();
    }
    drop(progress);
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(CopyError::local("running a stream for", &item.local)(std::io::Error::other(e))),
        }
    }
    CopyError::streams_done(&label, errors, streams.len(), journal.done.len(), ranges.len())?;
    let finished =
        options.ssh.output(host, &remote::finish_script(&part_path, &item.remote, &local_sum, item.mode)).await;
    if let (Ok(_) | Err(CopyError::Remote { code: 4, .. }), Some(path)) = (&finished, &journal_file) {
        let _ = std::fs::remove_file(path);
    }
    match finished {
        Err(CopyError::Remote { code: 4, .. }) => Err(CopyError::FileMismatch { file: label }),
        other => other.map(drop),
    }
}

/// SHA-256 of each range and of the whole local file, in one read.
fn sum_ranges(file: &File, ranges: &[Range]) -> std::io::Result<(Vec<String>, String)> {
    let mut whole = Sha256::new();
    let mut sums = Vec::with_capacity(ranges.len());
    let mut buf = vec![0; 1 << 20];
    for r in ranges {
        let mut hasher = Sha256::new();
        let mut at = 0;
        while at < r.len {
            let want = usize::try_from(r.len - at).unwrap_or(buf.len()).min(buf.len());
            let n = file.read_at(&mut buf[..want], r.offset + at)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            hasher.update(&buf[..n]);
            whole.update(&buf[..n]);
            at += n as u64;
        }
        sums.push(hex(&hasher.finalize()));
    }
    Ok((sums, hex(&whole.finalize())))
}

/// One stream's job.
struct Push {
    options: Options,
    host: String,
    part: String,
    local: PathBuf,
}

impl Push {
    /// Sends `share` to ssh's stdin; each range whose checksum from the instance matches `sums`
    /// is reported on `done` as the line arrives.
    async fn run(
        self,
        share: Vec<Range>,
        file: Arc<File>,
        sums: Arc<Vec<String>>,
        done: mpsc::UnboundedSender<u32>,
    ) -> Result<(), CopyError> {
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
            let (mut verified, mut bad, mut rest) = (Vec::new(), None, String::new());
            while let Ok(Some(line)) = lines.next_line().await {
                match remote::parse_range_line(&line) {
                    Some((index, sum)) if sums.get(index as usize) == Some(&sum) => {
                        verified.push(index);
                        let _ = done.send(index);
                    }
                    Some((index, _)) => bad = bad.or(Some(index)),
                    None if rest.len() < 16 << 10 => rest += &(line + "\n"),
                    None => {}
                }
            }
            (verified, bad, rest)
        });
        let mut buf = vec![0; CHUNK];
        'ranges: for r in &share {
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
                at += n as u64;
            }
        }
        let _ = stdin.shutdown().await;
        drop(stdin);
        let status = child.wait().await.map_err(|e| ssh.spawn_error(e))?;
        let (verified, bad, rest) = reader.await.unwrap_or_default();
        if let Some(index) = bad {
            return Err(CopyError::RangeMismatch { file: format!("{}:{}", self.host, self.part), index });
        }
        super::ssh::check(&self.host, status, &rest)?;
        if verified.len() != share.len() {
            return Err(CopyError::Short { host: self.host, path: self.part });
        }
        Ok(())
    }
}
