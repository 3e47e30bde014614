//! The commands `cp` runs on the instance and how their answers are read. Pure: strings in,
//! strings out. Every command is one `sh -c '…'` (whatever the user's login shell is) using only
//! POSIX sh, `dd`, `head -c`, `find`, `stat -c` (GNU or BusyBox) and `sha256sum`; every path is
//! one quoted word ([`sh_quote`]) assigned to a variable first, so no path is ever code.
//!
//! Range checksums: the instance reads a range twice, once into the stream and once into
//! `sha256sum`, and prints `ec2-broker-range INDEX HEX` on stderr after the range's bytes. The
//! second read costs the instance a read from its page cache and the connection 90 bytes, where
//! `tee` into a second stream would need a FIFO and a temporary file.

use std::fmt::Write as _;

use super::CopyError;
use super::plan::{BLOCK, Range};
use crate::text::sh_quote;

/// The marker before a range's checksum on stderr.
pub(crate) const RANGE_MARK: &str = "ec2-broker-range ";
/// The marker before the whole file's checksum on stderr.
pub(crate) const FILE_MARK: &str = "ec2-broker-file ";

/// `sh -c SCRIPT` as the one command word ssh sends.
pub(crate) fn sh(script: &str) -> String {
    format!("sh -c {}", sh_quote(script))
}

/// One regular file on the instance as the listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteFile {
    /// Its path as `find` printed it (the source path itself for a single file).
    pub(crate) path: String,
    /// Bytes.
    pub(crate) size: u64,
    /// Modification time, seconds since the epoch.
    pub(crate) mtime: i64,
    /// Permission bits.
    pub(crate) mode: u32,
}

/// What the source path is on the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    /// A regular file.
    File(RemoteFile),
    /// A directory and the regular files under it.
    Dir(Vec<RemoteFile>),
}

/// Lists the source: `D` and a `F SIZE MTIME MODE PATH` line per file for a directory, one such
/// line for a file; `N` missing, `R` unreadable, `X` neither file nor directory.
pub(crate) fn list_script(path: &str) -> String {
    let stat = "stat -c 'F %s %Y %a %n'";
    format!(
        "p={}; if [ -d \"$p\" ]; then echo D; find \"$p\" -type f -exec {stat} {{}} +; \
         elif [ -f \"$p\" ]; then if [ -r \"$p\" ]; then {stat} \"$p\"; else echo R; fi; \
         elif [ -e \"$p\" ]; then echo X; else echo N; fi",
        sh_quote(path)
    )
}

/// Reads the listing's output for `path`.
pub(crate) fn parse_listing(path: &str, out: &str) -> Result<Listing, CopyError> {
    let mut lines = out.lines();
    let first = lines.next().unwrap_or_default();
    let file = |line: &str| -> Result<RemoteFile, CopyError> {
        let bad = || CopyError::Listing(format!("unexpected line {:?}", crate::text::printable(line)));
        let rest = line.strip_prefix("F ").ok_or_else(bad)?;
        let mut parts = rest.splitn(4, ' ');
        let mut next = || parts.next().ok_or_else(bad);
        let size = next()?.parse().map_err(|_| bad())?;
        let mtime = next()?.parse().map_err(|_| bad())?;
        let mode = u32::from_str_radix(next()?, 8).map_err(|_| bad())?;
        Ok(RemoteFile { size, mtime, mode: mode & 0o7777, path: next()?.to_string() })
    };
    match first {
        "N" => Err(CopyError::Missing(path.into())),
        "R" => Err(CopyError::Unreadable(path.into())),
        "X" => Err(CopyError::NotAFile(path.into())),
        "D" => lines.map(file).collect::<Result<Vec<_>, _>>().map(Listing::Dir),
        _ => file(first).map(|mut f| {
            f.path = path.into();
            Listing::File(f)
        }),
    }
}

/// Appends the `for r in "INDEX BLOCK COUNT LEN" …` head shared by reads and writes.
fn range_loop(out: &mut String, ranges: &[Range]) {
    out.push_str("for r in");
    for r in ranges {
        let _ = write!(out, " '{} {} {} {}'", r.index, r.first_block(), r.blocks(), r.len);
    }
    out.push_str("; do set -- $r; ");
}

/// `dd` reading a range (`$2`, `$3` set by the loop) of `$VAR`.
fn dd_read(var: &str) -> String {
    format!("dd if=\"${var}\" bs={BLOCK} skip=$2 count=$3 2>/dev/null")
}

/// The checksum of the range just moved, on stderr; exit 3 when the file cannot be read.
fn range_sum(var: &str) -> String {
    format!("s=$({} | sha256sum) || exit 3; echo \"{RANGE_MARK}$1 ${{s%% *}}\" >&2; done", dd_read(var))
}

/// Sends `ranges` of `path` to stdout one after another, each followed by its checksum on
/// stderr; with `whole`, then the whole file's checksum (one stream reports it, so no extra
/// ssh connection, and no extra session, is needed for it).
pub(crate) fn read_script(path: &str, ranges: &[Range], whole: bool) -> String {
    let mut s = format!("p={}; [ -r \"$p\" ] || {{ echo \"$p: cannot be read\" >&2; exit 3; }}; ", sh_quote(path));
    range_loop(&mut s, ranges);
    let _ = write!(s, "{} || {{ echo \"$p: read error\" >&2; exit 3; }}; {}", dd_read("p"), range_sum("p"));
    if whole {
        let _ = write!(s, "; s=$(sha256sum < \"$p\") || exit 3; echo \"{FILE_MARK}${{s%% *}}\" >&2");
    }
    s
}

/// Reads one `ec2-broker-file HEX` line.
pub(crate) fn parse_file_line(line: &str) -> Option<String> {
    parse_sum(line.strip_prefix(FILE_MARK)?)
}

/// Writes `ranges` read from stdin (`head -c LEN` each: GNU and BusyBox `head` read no further)
/// into `part` at their offsets, each followed by the checksum of what landed there.
pub(crate) fn write_script(part: &str, ranges: &[Range]) -> String {
    let mut s = format!("t={}; ", sh_quote(part));
    range_loop(&mut s, ranges);
    let _ = write!(
        s,
        "head -c $4 | dd of=\"$t\" bs={BLOCK} seek=$2 conv=notrunc 2>/dev/null || exit 3; {}",
        range_sum("t")
    );
    s
}

/// The whole file's SHA-256 (hex on stdout).
pub(crate) fn sum_script(path: &str) -> String {
    format!("sha256sum < {}", sh_quote(path))
}

/// Reads `sha256sum`'s output: the 64 hex digits it starts with.
pub(crate) fn parse_sum(out: &str) -> Option<String> {
    let hex = out.get(..64)?;
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then(|| hex.to_ascii_lowercase())
}

/// Reads one `ec2-broker-range INDEX HEX` line; `None` for any other stderr line.
pub(crate) fn parse_range_line(line: &str) -> Option<(u32, String)> {
    let (index, hex) = line.strip_prefix(RANGE_MARK)?.split_once(' ')?;
    Some((index.parse().ok()?, parse_sum(hex)?))
}

/// What the destination path is on the instance: `D` a directory, `F` something else that
/// exists, `N` nothing.
pub(crate) fn stat_dest_script(path: &str) -> String {
    format!("p={}; if [ -d \"$p\" ]; then echo D; elif [ -e \"$p\" ]; then echo F; else echo N; fi", sh_quote(path))
}

/// Makes `dirs` (`mkdir -p`) and each part file anew (created 0600: umask 077) at its full
/// length, a hole until the ranges land. A part file that is short would otherwise say nothing
/// about which ranges a broken copy wrote, and a resume could not trust it.
pub(crate) fn prepare_script(dirs: &[String], parts: &[(String, u64)]) -> String {
    let mut s = String::from("umask 077");
    if !dirs.is_empty() {
        s.push_str(" && mkdir -p --");
        for d in dirs {
            let _ = write!(s, " {}", sh_quote(d));
        }
    }
    for (p, size) in parts {
        // Without `conv=notrunc`, dd cuts or extends its output to `seek` bytes.
        let _ = write!(s, " && : > {q} && dd if=/dev/null of={q} bs=1 seek={size} 2>/dev/null", q = sh_quote(p));
    }
    s
}

/// The size of each of `parts` on the instance, one line each (`-` for a missing one).
pub(crate) fn sizes_script(parts: &[String]) -> String {
    let mut s = String::from("for t in");
    for p in parts {
        let _ = write!(s, " {}", sh_quote(p));
    }
    s.push_str("; do if [ -f \"$t\" ]; then wc -c < \"$t\"; else echo -; fi; done");
    s
}

/// Reads [`sizes_script`]'s answer: a size or `None` per part, in order.
pub(crate) fn parse_sizes(out: &str, count: usize) -> Vec<Option<u64>> {
    let mut sizes: Vec<Option<u64>> = out.lines().map(|l| l.trim().parse().ok()).collect();
    sizes.resize(count, None);
    sizes
}

/// Checks `part`'s SHA-256 against `sum`, gives it `mode` and renames it to `path`; exit 4 with
/// the checksum found on stderr when it differs.
pub(crate) fn finish_script(part: &str, path: &str, sum: &str, mode: u32) -> String {
    format!(
        "t={}; p={}; s=$(sha256sum < \"$t\") || exit 3; [ \"${{s%% *}}\" = {sum} ] || \
         {{ echo \"ec2-broker-mismatch ${{s%% *}}\" >&2; exit 4; }}; chmod {mode:o} \"$t\" && mv -f -- \"$t\" \"$p\"",
        sh_quote(part),
        sh_quote(path)
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn run_sh(script: &str, dir: &std::path::Path) -> std::process::Output {
        Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("sh")
    }

    #[test]
    fn listings_are_read_and_odd_answers_refused() {
        let f = parse_listing("/x", "F 10 1700000000 644 /x\n").unwrap();
        assert_eq!(f, Listing::File(RemoteFile { path: "/x".into(), size: 10, mtime: 1_700_000_000, mode: 0o644 }));
        let d = parse_listing("/d", "D\nF 1 2 755 /d/a b\nF 0 2 600 /d/c\n").unwrap();
        let Listing::Dir(files) = d else { panic!("{d:?}") };
        assert_eq!((files[0].path.as_str(), files[0].mode), ("/d/a b", 0o755));
        assert!(matches!(parse_listing("/x", "N\n"), Err(CopyError::Missing(_))));
        assert!(matches!(parse_listing("/x", "R\n"), Err(CopyError::Unreadable(_))));
        assert!(matches!(parse_listing("/x", "X\n"), Err(CopyError::NotAFile(_))));
        for bad in ["", "F x 1 644 /x", "F 1 1 9z9 /x", "\x1b[2J"] {
            assert!(parse_listing("/x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn part_sizes_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a b"), b"12345").unwrap();
        let parts = ["nope".to_string(), "a b".to_string()];
        let out = run_sh(&sizes_script(&parts), dir.path());
        assert_eq!(parse_sizes(&String::from_utf8_lossy(&out.stdout), 2), [None, Some(5)]);
        assert_eq!(parse_sizes("", 1), [None]);
    }

    #[test]
    fn checksum_lines_are_read_strictly() {
        assert_eq!(parse_range_line(&format!("{RANGE_MARK}3 {HEX}")), Some((3, HEX.into())));
        assert_eq!(parse_sum(&format!("{HEX}  -\n")).as_deref(), Some(HEX));
        assert_eq!(parse_range_line("Warning: Permanently added"), None);
        assert_eq!(parse_range_line(&format!("{RANGE_MARK}x {HEX}")), None);
        assert_eq!(parse_sum("zz"), None);
    }

    /// The scripts run under the local sh against odd names: what they read and write is exact.
    #[test]
    fn scripts_move_exact_ranges_of_files_with_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let name = "it's a $(touch pwned) `x`.bin";
        let data: Vec<u8> = (0..(3 * BLOCK + 100)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join(name), &data).unwrap();
        let out = run_sh(&list_script(name), dir.path());
        let Listing::File(f) = parse_listing(name, &String::from_utf8_lossy(&out.stdout)).unwrap() else { panic!() };
        assert_eq!(f.size, data.len() as u64);

        let rs = super::super::plan::ranges(f.size, 2 * BLOCK);
        let out = run_sh(&read_script(name, &[rs[1], rs[0]], true), dir.path());
        assert!(out.status.success(), "{out:?}");
        let want = [&data[2 * BLOCK as usize..], &data[..2 * BLOCK as usize]].concat();
        assert_eq!(out.stdout, want);
        let sums: Vec<_> = String::from_utf8_lossy(&out.stderr).lines().filter_map(parse_range_line).collect();
        assert_eq!(sums.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 0]);
        let whole: Vec<_> = String::from_utf8_lossy(&out.stderr).lines().filter_map(parse_file_line).collect();

        // Write the two ranges back, out of order, into a part file, then finish it.
        let part = format!("{name}.part");
        std::fs::write(dir.path().join(&part), b"an older, longer part file than this copy's").unwrap();
        let out = run_sh(&prepare_script(&["sub dir/x".into()], &[(part.clone(), f.size)]), dir.path());
        assert!(out.status.success() && dir.path().join("sub dir/x").is_dir(), "{out:?}");
        let made = std::fs::metadata(dir.path().join(&part)).unwrap();
        assert_eq!(made.len(), f.size, "the part file has the file's length before any range lands");
        assert!(std::fs::read(dir.path().join(&part)).unwrap().iter().all(|b| *b == 0));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(write_script(&part, &[rs[1], rs[0]]))
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &want).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(dir.path().join(&part)).unwrap(), data);
        let back: Vec<_> = String::from_utf8_lossy(&out.stderr).lines().filter_map(parse_range_line).collect();
        assert_eq!(back, sums, "the checksums of what landed are those of what was read");

        let sum = parse_sum(&String::from_utf8_lossy(&run_sh(&sum_script(&part), dir.path()).stdout)).unwrap();
        assert_eq!(whole, std::slice::from_ref(&sum));
        let out = run_sh(&finish_script(&part, "done.bin", HEX, 0o640), dir.path());
        assert_eq!(out.status.code(), Some(4), "a wrong checksum is refused");
        let out = run_sh(&finish_script(&part, "done.bin", &sum, 0o640), dir.path());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(dir.path().join("done.bin")).unwrap(), data);
        assert!(!dir.path().join("pwned").exists());
        assert!(matches!(
            parse_listing("nope", &String::from_utf8_lossy(&run_sh(&list_script("nope"), dir.path()).stdout)),
            Err(CopyError::Missing(_))
        ));
    }
}
