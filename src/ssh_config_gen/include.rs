//! Whether the user's ssh_config reads a file: its `Include` lines, read as ssh reads them
//! (`~` is the home directory, a relative path is under `~/.ssh`, `*` and `?` are wildcards,
//! several paths per line, quotes allowed). Pure: the caller reads the files.

use std::path::{Path, PathBuf};

/// Whether an `Include` line of `config` names `file`, and whether that line comes after the first
/// `Host` or `Match` line (then ssh reads the file only for hosts of that block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Included {
    /// No `Include` names it.
    No,
    /// Named before any `Host`/`Match`: read for every host.
    Everywhere,
    /// Named only inside a `Host`/`Match` block.
    InsideBlock,
}

/// How `config` (the text of `~/.ssh/config`) includes `file` (an absolute path).
pub(crate) fn included(config: &str, file: &Path, home: &Path) -> Included {
    let mut in_block = false;
    let mut found = Included::No;
    for line in config.lines() {
        let line = line.trim();
        let (keyword, rest) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, r)) => (k, r.trim_start_matches(|c: char| c.is_whitespace() || c == '=')),
            None => (line, ""),
        };
        if keyword.eq_ignore_ascii_case("host") || keyword.eq_ignore_ascii_case("match") {
            in_block = true;
        } else if keyword.eq_ignore_ascii_case("include") {
            let names = words(rest).into_iter().any(|w| matches(&expand(&w, home), file));
            if names {
                if !in_block {
                    return Included::Everywhere;
                }
                found = Included::InsideBlock;
            }
        }
    }
    found
}

/// Splits on whitespace, keeping double-quoted runs together.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn expand(word: &str, home: &Path) -> PathBuf {
    if let Some(rest) = word.strip_prefix("~/") {
        home.join(rest)
    } else if word.starts_with('/') {
        PathBuf::from(word)
    } else {
        home.join(".ssh").join(word)
    }
}

fn matches(pattern: &Path, file: &Path) -> bool {
    let (p, f) = (pattern.to_string_lossy(), file.to_string_lossy());
    // ssh globs with glob(3): a wildcard does not cross a `/`.
    let (pp, fp): (Vec<&str>, Vec<&str>) = (p.split('/').collect(), f.split('/').collect());
    pp.len() == fp.len() && pp.iter().zip(&fp).all(|(a, b)| crate::inventory::filter::wildcard(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_lines_as_ssh_reads_them() {
        let home = Path::new("/home/u");
        let file = Path::new("/home/u/.ssh/ec2.conf");
        for (config, want) in [
            ("Include ~/.ssh/ec2.conf\nHost a\n", Included::Everywhere),
            ("include ec2.conf", Included::Everywhere),
            ("Include=\"/home/u/.ssh/ec2.conf\"", Included::Everywhere),
            ("Include other.conf ~/.ssh/*.conf", Included::Everywhere),
            ("Host a\n  Include ec2.conf\n", Included::InsideBlock),
            ("Include ~/ec2.conf\n", Included::No),
            ("Include ~/.ssh/*/ec2.conf\n", Included::No),
            ("# Include ec2.conf\n", Included::No),
            ("", Included::No),
        ] {
            assert_eq!(included(config, file, home), want, "{config:?}");
        }
    }
}
