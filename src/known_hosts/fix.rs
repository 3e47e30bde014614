//! `--fix`: the file without the entries the audit found stale, recycled, duplicated or in
//! conflict (sans-IO). Comments, blank lines, order and every untouched line stay byte for byte,
//! line endings included (a CRLF line stays CRLF; a line that is not UTF-8 stays as it was).
//! A line naming several hosts loses only the hosts concerned; a line left with none goes.
//! [`refix`] makes the same fix on a file that ssh appended to since the audit read it.
//!
//! Never removed: mismatches with the console (the user must find out why before trusting
//! anything new), addresses no instance has (they may be outside this account, or not EC2 at
//! all), and malformed lines (the user may want to repair them).

use std::collections::{BTreeMap, BTreeSet};

use russh::keys::ssh_key::known_hosts::HostPatterns;

use super::file::{KnownHostsFile, Line};
use super::findings::{Finding, Kind};

/// What a fix removes from one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Line number.
    pub line: usize,
    /// The hosts removed (all of them when the line goes).
    pub hosts: Vec<String>,
    /// Whether the whole line goes.
    pub whole_line: bool,
}

/// The fixed file and what was removed, for the findings of one file.
pub fn fix(file: &KnownHostsFile, findings: &[Finding]) -> (Vec<u8>, Vec<Removal>) {
    let mut drop: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let verified: BTreeSet<(usize, &str)> =
        findings.iter().filter(|f| f.kind == Kind::Verified).map(|f| (f.line, f.host.as_str())).collect();
    for f in findings {
        let removable = match f.kind {
            Kind::Duplicate | Kind::Terminated | Kind::Recycled | Kind::SerialEndpointMismatch => true,
            // A conflict: both sides go, unless the console verified one of them.
            Kind::Conflict => !verified.iter().any(|(line, _)| *line == f.line),
            _ => false,
        };
        if removable {
            drop.entry(f.line).or_default().extend(hosts_named(f));
        }
    }
    // The other side of each conflict (the first line with that host), unless verified.
    for f in findings.iter().filter(|f| f.kind == Kind::Conflict) {
        if let Some(first) = f.other_line.filter(|first| !verified.iter().any(|(line, _)| line == first)) {
            drop.entry(first).or_default().extend(hosts_named(f));
        }
    }

    let mut out = Vec::new();
    let mut removals = Vec::new();
    let mut last_removed = false;
    for (index, (n, text, line)) in file.lines.iter().enumerate() {
        let raw = file.raw_line(index);
        last_removed = false;
        let Some(hosts) = drop.get(n) else {
            out.extend_from_slice(raw);
            continue;
        };
        let kept: Option<Vec<&String>> = match line {
            Line::Entry(e) => match &e.hosts {
                HostPatterns::Patterns(p) => Some(p.iter().filter(|h| !hosts.contains(*h)).collect()),
                HostPatterns::HashedName { .. } => None,
            },
            _ => None,
        };
        match kept {
            Some(kept) if !kept.is_empty() && kept.iter().any(|h| !h.starts_with('!')) => {
                out.extend_from_slice(replace_hosts(text, &kept).as_bytes());
                out.extend_from_slice(ending(raw));
                removals.push(Removal { line: *n, hosts: hosts.iter().cloned().collect(), whole_line: false });
            }
            _ => {
                removals.push(Removal { line: *n, hosts: hosts.iter().cloned().collect(), whole_line: true });
                last_removed = true;
            }
        }
    }
    // The last line went: the file keeps ending as it did (without a newline, if it had none).
    if last_removed && !file.final_newline {
        let trimmed = out.strip_suffix(b"\n").map(|o| o.strip_suffix(b"\r").unwrap_or(o)).map(<[u8]>::len);
        out.truncate(trimmed.unwrap_or(out.len()));
    }
    (out, removals)
}

/// The fix of `audited` (the bytes the audit read and `findings` are about) made on `current`
/// (what the file holds now): the same as [`fix`] when nothing changed; when ssh only appended
/// lines, the same removals with the new lines kept; `None` when the file changed otherwise
/// (the line numbers of the findings may no longer mean the same lines).
pub fn refix(audited: &[u8], current: &[u8], findings: &[Finding]) -> Option<(Vec<u8>, Vec<Removal>)> {
    let appended = current.strip_prefix(audited)?;
    // What was appended must start a line of its own, or it changed the audited last line.
    let starts_a_line = audited.is_empty() || audited.ends_with(b"\n") || appended.first().is_none_or(|b| *b == b'\n');
    starts_a_line.then(|| fix(&KnownHostsFile::from_bytes(current), findings))
}

/// The line ending `raw` ends with (`\r\n`, `\n`, or none).
fn ending(raw: &[u8]) -> &[u8] {
    match raw.strip_suffix(b"\n") {
        Some(rest) if rest.ends_with(b"\r") => b"\r\n",
        Some(_) => b"\n",
        None => b"",
    }
}

/// The host pattern(s) a finding is about (a whole-line finding names the whole field).
fn hosts_named(f: &Finding) -> Vec<String> {
    f.host.split(',').map(str::to_string).collect()
}

/// The line with its host field replaced by `hosts`, everything else as it was.
fn replace_hosts(text: &str, hosts: &[&String]) -> String {
    let start = text.len() - text.trim_start().len();
    let body = &text[start..];
    let (marker, rest) = match body.starts_with('@') {
        true => body.split_once([' ', '\t']).map_or((body, ""), |(m, r)| (m, r)),
        false => ("", body),
    };
    let rest_trimmed = rest.trim_start();
    let field_end = rest_trimmed.find([' ', '\t']).unwrap_or(rest_trimmed.len());
    let joined: Vec<&str> = hosts.iter().map(|h| h.as_str()).collect();
    let prefix = match marker {
        "" => text[..start].to_string(),
        m => format!("{}{m} ", &text[..start]),
    };
    format!("{prefix}{}{}", joined.join(","), &rest_trimmed[field_end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::known_hosts::findings::{self, Ec2Facts, InstanceFacts};
    use russh::keys::{Algorithm, PrivateKey, PublicKey};

    fn key() -> String {
        let k: PublicKey = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().clone();
        k.to_openssh().unwrap()
    }

    #[test]
    fn removes_only_what_is_stale_and_keeps_the_rest_verbatim() {
        let (a, b, c) = (key(), key(), key());
        let text = format!(
            "# keep me\n\nweb-1,10.0.1.5\t{a} c1\nweb-1 {a}\n10.0.1.9 {b}\nhome.lan,10.0.1.7 {c}\n@cert-authority *.corp {c}\nbroken line\n"
        );
        let file = KnownHostsFile::parse(&text);
        let mut found = findings::from_file("kh", &file);
        let facts = Ec2Facts {
            by_host: BTreeMap::from([
                (
                    "10.0.1.9".to_string(),
                    vec![InstanceFacts { id: "i-01".into(), state: "terminated".into(), console: None }],
                ),
                (
                    "10.0.1.7".to_string(),
                    vec![InstanceFacts { id: "i-02".into(), state: "terminated".into(), console: None }],
                ),
            ]),
        };
        found.extend(findings::from_ec2("kh", &file, &facts));
        let (fixed, removed) = fix(&file, &found);
        let fixed = String::from_utf8(fixed).unwrap();
        assert_eq!(
            fixed,
            format!(
                "# keep me\n\nweb-1,10.0.1.5\t{a} c1\n{}home.lan {c}\n@cert-authority *.corp {c}\nbroken line\n",
                ""
            )
        );
        assert_eq!(
            removed,
            [
                Removal { line: 4, hosts: vec!["web-1".into()], whole_line: true },
                Removal { line: 5, hosts: vec!["10.0.1.9".into()], whole_line: true },
                Removal { line: 6, hosts: vec!["10.0.1.7".into()], whole_line: false },
            ]
        );
    }

    #[test]
    fn conflicts_lose_both_sides_unless_one_is_verified() {
        let (a, b) = (key(), key());
        let text = format!("10.0.1.5 {a}\n10.0.1.5 {b}\n");
        let file = KnownHostsFile::parse(&text);
        let found = findings::from_file("kh", &file);
        let (fixed, _) = fix(&file, &found);
        assert_eq!(fixed, b"");
        let console = crate::known_hosts::console::ConsoleKeys {
            fingerprints: vec![],
            keys: vec![PublicKey::from_openssh(&b).unwrap()],
        };
        let facts = Ec2Facts {
            by_host: BTreeMap::from([(
                "10.0.1.5".to_string(),
                vec![InstanceFacts { id: "i-03".into(), state: "running".into(), console: Some(console) }],
            )]),
        };
        let mut found = findings::from_file("kh", &file);
        found.extend(findings::from_ec2("kh", &file, &facts));
        let (fixed, _) = fix(&file, &found);
        assert_eq!(fixed, format!("10.0.1.5 {b}\n").into_bytes(), "the verified line stays, the mismatching one goes");
    }

    /// See: issue 14. The old fix wrote every line with `\n`, and a file that is not UTF-8 could
    /// not be read at all.
    #[test]
    fn issue_14_line_endings_and_non_utf8_lines_are_kept() {
        let a = key();
        let mut text = format!("# crlf\r\nweb-1,10.0.1.5 {a}\r\nweb-1 {a}\r\n").into_bytes();
        text.extend_from_slice(b"caf\xe9 lf\nlast-lf-line\n");
        let file = KnownHostsFile::from_bytes(&text);
        let found = findings::from_file("kh", &file);
        assert!(found.iter().any(|f| f.kind == Kind::Malformed && f.line == 4));
        let (fixed, removed) = fix(&file, &found);
        let mut want = format!("# crlf\r\nweb-1,10.0.1.5 {a}\r\n").into_bytes();
        want.extend_from_slice(b"caf\xe9 lf\nlast-lf-line\n");
        assert_eq!(fixed, want);
        assert_eq!(removed, [Removal { line: 3, hosts: vec!["web-1".into()], whole_line: true }]);

        // A narrowed CRLF line stays CRLF.
        let text = format!("web-1 {a}\r\n10.0.1.5,web-1 {a}\r\n");
        let file = KnownHostsFile::parse(&text);
        let (fixed, _) = fix(&file, &findings::from_file("kh", &file));
        assert_eq!(String::from_utf8(fixed).unwrap(), format!("web-1 {a}\r\n10.0.1.5 {a}\r\n"));

        // The last line goes: the file still ends without a newline.
        let text = format!("web-1 {a}\r\nweb-1 {a}");
        let file = KnownHostsFile::parse(&text);
        let (fixed, _) = fix(&file, &findings::from_file("kh", &file));
        assert_eq!(String::from_utf8(fixed).unwrap(), format!("web-1 {a}"));
    }

    /// See: issue 14. Lines ssh appended after the audit read the file survive the fix.
    #[test]
    fn issue_14_refix_keeps_appended_lines_and_refuses_other_changes() {
        let (a, b) = (key(), key());
        let audited = format!("web-1 {a}\nweb-1 {a}\n");
        let file = KnownHostsFile::parse(&audited);
        let found = findings::from_file("kh", &file);
        let (fixed, _) = refix(audited.as_bytes(), audited.as_bytes(), &found).unwrap();
        assert_eq!(fixed, fix(&file, &found).0);
        let current = format!("{audited}new-host {b}\n");
        let (fixed, removed) = refix(audited.as_bytes(), current.as_bytes(), &found).unwrap();
        assert_eq!(String::from_utf8(fixed).unwrap(), format!("web-1 {a}\nnew-host {b}\n"));
        assert_eq!(removed.len(), 1);
        // Rewritten by someone else, or the last line extended: no guessing.
        assert!(refix(audited.as_bytes(), format!("web-1 {a}\n").as_bytes(), &found).is_none());
        let no_newline = format!("web-1 {a}\nweb-1 {a}");
        assert!(refix(no_newline.as_bytes(), format!("{no_newline} more\n").as_bytes(), &found).is_none());
        assert!(refix(no_newline.as_bytes(), format!("{no_newline}\nnew-host {b}\n").as_bytes(), &found).is_some());
    }
}
