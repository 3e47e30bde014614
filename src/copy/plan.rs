//! The sans-IO half of `cp`: what the user typed, which side is remote, how a file is cut into
//! ranges and which stream carries which range. No I/O, no clock.

use std::path::{Path, PathBuf};

use super::CopyError;

/// dd's block size on the instance; every range starts at a multiple of it, so plain POSIX
/// `dd bs=65536 skip=K count=M` (reads) and `dd seek=K conv=notrunc` (writes) address ranges
/// without GNU's `iflag=skip_bytes,count_bytes`.
pub(crate) const BLOCK: u64 = 64 << 10;
/// Files smaller than this go over one stream in one range unless `--range-size` is given: the
/// extra ssh logins (an SSM session start each) would cost more than the streams save.
pub(crate) const SPLIT_FROM: u64 = 4 << 20;
/// The default range size aims at this many ranges per stream, so that a stream killed midway
/// loses little and the streams finish together.
const RANGES_PER_STREAM: u64 = 4;
/// Bounds of the default range size: small ranges cost a journal write and a remote checksum
/// pass each; large ones lose more when a stream breaks.
const MIN_RANGE: u64 = 256 << 10;
const MAX_RANGE: u64 = 64 << 20;

/// One side of the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    /// A local path.
    Local(PathBuf),
    /// `[USER@]HOST:PATH` (an empty PATH means the login directory, as for scp).
    Remote {
        /// `HOST` or `USER@HOST`, handed to ssh as it is.
        host: String,
        /// The path on the instance.
        path: String,
    },
}

impl Side {
    /// Reads one operand as scp does: `HOST:PATH` when a colon comes before any slash, a local
    /// path otherwise (`./a:b` and `/x:y` are local).
    pub(crate) fn parse(arg: &str) -> Result<Side, CopyError> {
        if arg.is_empty() {
            return Err(CopyError::Usage("an empty path".into()));
        }
        let colon = arg.find(':');
        let slash = arg.find('/');
        match colon {
            Some(c) if slash.is_none_or(|s| c < s) => {
                let (host, path) = (&arg[..c], &arg[c + 1..]);
                if host.is_empty() || host.ends_with('@') || host.starts_with('-') {
                    return Err(CopyError::Usage(format!("{arg:?} names no host before the colon")));
                }
                if path.contains('\n') || host.contains(char::is_whitespace) {
                    return Err(CopyError::Usage(format!("{arg:?}: a newline or a space in the host")));
                }
                Ok(Side::Remote { host: host.into(), path: if path.is_empty() { ".".into() } else { path.into() } })
            }
            _ => Ok(Side::Local(PathBuf::from(arg))),
        }
    }
}

/// Which way the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `HOST:PATH` to a local path.
    Download {
        /// The instance.
        host: String,
        /// The remote source.
        remote: String,
        /// The local destination.
        local: PathBuf,
    },
    /// A local path to `HOST:PATH`.
    Upload {
        /// The local source.
        local: PathBuf,
        /// The instance.
        host: String,
        /// The remote destination.
        remote: String,
    },
}

/// The direction from the two operands: exactly one must be remote.
pub(crate) fn direction(source: Side, destination: Side) -> Result<Direction, CopyError> {
    match (source, destination) {
        (Side::Remote { host, path }, Side::Local(local)) => Ok(Direction::Download { host, remote: path, local }),
        (Side::Local(local), Side::Remote { host, path }) => Ok(Direction::Upload { local, host, remote: path }),
        (Side::Local(_), Side::Local(_)) => {
            Err(CopyError::Usage("neither side is HOST:PATH: use cp(1) for local copies".into()))
        }
        (Side::Remote { .. }, Side::Remote { .. }) => {
            Err(CopyError::Usage("both sides are remote: copy to a local path first".into()))
        }
    }
}

/// Reads `--range-size`: a number with an optional K, M or G (1024-based), a multiple of 64 KiB.
pub(crate) fn parse_size(text: &str) -> Result<u64, CopyError> {
    let bad = || CopyError::Usage(format!("--range-size {text:?}: use a size such as 64K, 1M or 8M"));
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let size = n.checked_shl(shift).filter(|s| *s >> shift == n).ok_or_else(bad)?;
    if size == 0 || size % BLOCK != 0 {
        return Err(CopyError::Usage(format!("--range-size {text}: must be a non-zero multiple of 64K")));
    }
    Ok(size)
}

/// One piece of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// Position in the file's range list (what the journal records).
    pub(crate) index: u32,
    /// First byte (a multiple of [`BLOCK`]).
    pub(crate) offset: u64,
    /// Bytes in it (only the last range may be shorter than the range size).
    pub(crate) len: u64,
}

impl Range {
    /// dd's `skip=`/`seek=`: the offset in blocks.
    pub(crate) fn first_block(&self) -> u64 {
        self.offset / BLOCK
    }

    /// dd's `count=`: the blocks the range spans (the last one may be partial at the end of file).
    pub(crate) fn blocks(&self) -> u64 {
        self.len.div_ceil(BLOCK)
    }
}

/// How a file of `size` bytes is cut: the range size and how many streams are worth opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Bytes per range.
    pub(crate) range_size: u64,
    /// Streams to open at most.
    pub(crate) streams: u32,
}

/// The cut for a file: one range over one stream below [`SPLIT_FROM`] unless a range size was
/// given; otherwise about [`RANGES_PER_STREAM`] ranges per stream.
pub(crate) fn cut(size: u64, streams: u32, range_size: Option<u64>) -> Cut {
    let range_size = match range_size {
        Some(r) => r,
        None if size < SPLIT_FROM => return Cut { range_size: size.max(BLOCK).next_multiple_of(BLOCK), streams: 1 },
        None => (size / (u64::from(streams) * RANGES_PER_STREAM)).clamp(MIN_RANGE, MAX_RANGE).next_multiple_of(BLOCK),
    };
    let count = size.div_ceil(range_size).max(1);
    Cut { range_size, streams: streams.min(u32::try_from(count).unwrap_or(u32::MAX)) }
}

/// Every range of a file of `size` bytes (none for an empty file).
pub(crate) fn ranges(size: u64, range_size: u64) -> Vec<Range> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < size {
        let len = range_size.min(size - offset);
        let index = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out.push(Range { index, offset, len });
        offset += len;
    }
    out
}

/// The ranges still to move, dealt to at most `streams` streams in turn (range 0 to stream 0,
/// range 1 to stream 1, …), so every stream reads the file from front to back and the streams
/// finish together; empty streams are left out.
pub(crate) fn deal(pending: &[Range], streams: u32) -> Vec<Vec<Range>> {
    let n = (streams.max(1) as usize).min(pending.len());
    let mut out = vec![Vec::new(); n];
    for (i, r) in pending.iter().enumerate() {
        out[i % n].push(*r);
    }
    out
}

/// Where a file lands: inside `dst` under the source's own name when `dst` is an existing
/// directory (`dst_is_dir`), at `dst` otherwise.
pub(crate) fn landing(dst: &Path, dst_is_dir: bool, source: &str) -> Result<PathBuf, CopyError> {
    if !dst_is_dir {
        return Ok(dst.to_path_buf());
    }
    let name = source.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." {
        return Err(CopyError::Usage(format!("cannot tell a file name from {source:?}: name the destination file")));
    }
    Ok(dst.join(name))
}

/// The path of a file inside a copied tree, relative to the tree's root, checked to stay inside
/// it: no `..`, no absolute path, no empty component (a listing from the instance is untrusted).
pub(crate) fn relative_inside(root: &str, path: &str) -> Result<String, CopyError> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root).and_then(|r| r.strip_prefix('/'));
    match rest {
        Some(r) if !r.is_empty() && r.split('/').all(|c| !c.is_empty() && c != "." && c != "..") => Ok(r.into()),
        _ => Err(CopyError::Listing(format!("{path:?} is not inside {root:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_are_read_as_scp_reads_them() {
        let remote = |h: &str, p: &str| Side::Remote { host: h.into(), path: p.into() };
        assert_eq!(Side::parse("db-1:/var/log/x").unwrap(), remote("db-1", "/var/log/x"));
        assert_eq!(Side::parse("ec2-user@db-1:x y").unwrap(), remote("ec2-user@db-1", "x y"));
        assert_eq!(Side::parse("db-1:").unwrap(), remote("db-1", "."));
        assert_eq!(Side::parse("./a:b").unwrap(), Side::Local("./a:b".into()));
        assert_eq!(Side::parse("/x:y").unwrap(), Side::Local("/x:y".into()));
        assert_eq!(Side::parse("plain").unwrap(), Side::Local("plain".into()));
        for bad in ["", ":x", "u@:x", "-oProxyCommand=x:y"] {
            assert!(Side::parse(bad).is_err(), "{bad:?}");
        }
        assert!(direction(Side::Local("a".into()), Side::Local("b".into())).is_err());
        assert!(direction(remote("a", "x"), remote("b", "y")).is_err());
    }

    #[test]
    fn sizes_are_multiples_of_the_block() {
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("131072").unwrap(), 131072);
        for bad in ["", "0", "1000", "3K", "M", "-1M", "99999999999999999999G", "18014398509481984G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn small_files_take_one_stream_and_large_ones_several_ranges_each() {
        assert_eq!(cut(0, 4, None), Cut { range_size: BLOCK, streams: 1 });
        assert_eq!(cut(1 << 20, 4, None).streams, 1);
        let c = cut(8 << 20, 4, None);
        assert_eq!((c.range_size, c.streams), (512 << 10, 4));
        assert_eq!(cut(1 << 40, 4, None).range_size, MAX_RANGE);
        assert_eq!(cut(256 << 10, 4, Some(BLOCK)), Cut { range_size: BLOCK, streams: 4 });
        assert_eq!(cut(100_000, 4, Some(BLOCK)).streams, 2, "two ranges, two streams");
    }

    #[test]
    fn ranges_cover_the_file_once_and_streams_share_them() {
        for size in [0, 1, BLOCK - 1, BLOCK, 5 * BLOCK + 7, 1 << 20] {
            let rs = ranges(size, 2 * BLOCK);
            assert_eq!(rs.iter().map(|r| r.len).sum::<u64>(), size);
            for w in rs.windows(2) {
                assert_eq!(w[0].offset + w[0].len, w[1].offset);
                assert_eq!(w[1].offset % BLOCK, 0);
            }
            if let Some(last) = rs.last() {
                assert_eq!(last.first_block() + last.blocks(), size.div_ceil(BLOCK));
            }
        }
        let rs = ranges(10 * BLOCK, BLOCK);
        let dealt = deal(&rs, 4);
        assert_eq!(dealt.len(), 4);
        assert_eq!(dealt[0].iter().map(|r| r.index).collect::<Vec<_>>(), [0, 4, 8]);
        assert_eq!(dealt[3].iter().map(|r| r.index).collect::<Vec<_>>(), [3, 7]);
        assert_eq!(deal(&rs[..2], 4).len(), 2);
        assert!(deal(&[], 4).is_empty());
    }

    #[test]
    fn files_land_under_their_own_name_in_a_directory_and_listings_stay_inside() {
        assert_eq!(landing(Path::new("out"), true, "/var/log/app.log").unwrap(), Path::new("out/app.log"));
        assert_eq!(landing(Path::new("out"), true, "logs/").unwrap(), Path::new("out/logs"));
        assert_eq!(landing(Path::new("x.bin"), false, "a").unwrap(), Path::new("x.bin"));
        assert!(landing(Path::new("out"), true, "/").is_err());
        assert_eq!(relative_inside("/d/", "/d/a/b").unwrap(), "a/b");
        for bad in ["/d/../etc/passwd", "/d", "/dx/a", "/d//a", "/e/a"] {
            assert!(relative_inside("/d", bad).is_err(), "{bad}");
        }
    }
}
