//! Reading an OpenSSH known_hosts file line by line (sans-IO): markers, hashed names, pattern
//! lists, keys and comments, with every line kept so a rewrite can preserve what it does not
//! touch. The field syntax is ssh-key's (`known_hosts::HostPatterns`, `Marker`, `PublicKey`);
//! this file adds what a user's file needs: whitespace as sshd accepts it, comments and blank
//! lines, and a line number and a reason for every line that does not parse.

use std::str::FromStr;

use russh::keys::PublicKey;
use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};
use russh::keys::ssh_key::known_hosts::{HostPatterns, Marker};

/// One line of a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Empty or whitespace only.
    Blank,
    /// `# …`.
    Comment,
    /// A host key entry.
    Entry(Box<Entry>),
    /// Not a valid line: why.
    Malformed(String),
}

/// A parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `@cert-authority` or `@revoked`.
    pub marker: Option<Marker>,
    /// A hashed name or a pattern list.
    pub hosts: HostPatterns,
    /// The key's algorithm name as written (`ssh-ed25519`, `ssh-rsa`, …).
    pub key_type: String,
    /// The key, when ssh-key can decode it (unknown algorithms stay `None` but are still entries).
    pub key: Option<PublicKey>,
    /// The base64 key blob as written (for comparing keys ssh-key cannot decode).
    pub key_blob: String,
    /// The comment after the key, if any.
    pub comment: String,
}

/// A file's lines, numbered from 1, with their text.
#[derive(Debug, Clone)]
pub struct KnownHostsFile {
    /// `(line number, original text, parsed)`; the text has no line ending, and a line that is
    /// not UTF-8 has it lossily (its bytes are kept in `raw`).
    pub lines: Vec<(usize, String, Line)>,
    /// Whether the last line ended with a newline (a rewrite keeps it that way).
    pub final_newline: bool,
    /// Each line's bytes as read, with its own ending (`\n`, `\r\n`, or none for the last).
    raw: Vec<Vec<u8>>,
}

impl KnownHostsFile {
    /// Parses a whole file; never fails: bad lines become [`Line::Malformed`].
    pub fn parse(text: &str) -> KnownHostsFile {
        KnownHostsFile::from_bytes(text.as_bytes())
    }

    /// Parses a file's bytes: a line that is not UTF-8 becomes [`Line::Malformed`] (saying where),
    /// and the others are read as usual.
    pub fn from_bytes(bytes: &[u8]) -> KnownHostsFile {
        let mut lines = Vec::new();
        let mut raw = Vec::new();
        for (i, with_ending) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let body = match with_ending.strip_suffix(b"\n") {
                Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                None => with_ending,
            };
            let (text, parsed) = match std::str::from_utf8(body) {
                Ok(text) => (text.to_string(), parse_line(text)),
                Err(e) => {
                    let at = e.valid_up_to();
                    let why = format!("not UTF-8 text (byte {:#04x} at column {})", body[at], at + 1);
                    (String::from_utf8_lossy(body).into_owned(), Line::Malformed(why))
                }
            };
            lines.push((i + 1, text, parsed));
            raw.push(with_ending.to_vec());
        }
        KnownHostsFile { lines, final_newline: bytes.is_empty() || bytes.ends_with(b"\n"), raw }
    }

    /// Line `index` (from 0) as read: its bytes and its ending.
    pub fn raw_line(&self, index: usize) -> &[u8] {
        self.raw.get(index).map_or(&[], Vec::as_slice)
    }

    /// The entries with their line numbers.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.lines.iter().filter_map(|(n, _, l)| match l {
            Line::Entry(e) => Some((*n, &**e)),
            _ => None,
        })
    }
}

/// Parses one line.
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    if trimmed.is_empty() {
        return Line::Blank;
    }
    if trimmed.starts_with('#') {
        return Line::Comment;
    }
    let mut fields = trimmed.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut first = fields.next().unwrap_or_default();
    let marker = match first.strip_prefix('@') {
        Some(_) => match Marker::from_str(first) {
            Ok(m) => {
                first = match fields.next() {
                    Some(f) => f,
                    None => return Line::Malformed(format!("{first} with nothing after it")),
                };
                Some(m)
            }
            Err(_) => return Line::Malformed(format!("unknown marker {first} (only @cert-authority and @revoked)")),
        },
        None => None,
    };
    let hosts = match parse_hosts(first) {
        Ok(h) => h,
        Err(why) => return Line::Malformed(why),
    };
    let (Some(key_type), Some(key_blob)) = (fields.next(), fields.next()) else {
        return Line::Malformed("no key after the host names (expected: HOSTS KEYTYPE BASE64 [COMMENT])".into());
    };
    let comment = fields.collect::<Vec<_>>().join(" ");
    if !key_blob.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
        return Line::Malformed(format!("the {key_type} key is not base64"));
    }
    // Every key blob starts with its own algorithm name (RFC 4253 §6.6).
    match blob_type(key_blob) {
        None => return Line::Malformed(format!("the {key_type} key does not decode (truncated or damaged?)")),
        Some(inner) if inner != key_type => {
            return Line::Malformed(format!("the key says {key_type} but holds a {inner} key"));
        }
        Some(_) => {}
    }
    let key = PublicKey::from_openssh(&format!("{key_type} {key_blob}")).ok();
    if key.is_none() && known_algorithm(key_type) {
        return Line::Malformed(format!("the {key_type} key does not decode (truncated or damaged?)"));
    }
    Line::Entry(Box::new(Entry {
        marker,
        hosts,
        key_type: key_type.to_string(),
        key,
        key_blob: key_blob.to_string(),
        comment,
    }))
}

/// The algorithm name a base64 key blob starts with.
fn blob_type(blob: &str) -> Option<String> {
    let bytes = Base64::decode_vec(blob).ok()?;
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let name = bytes.get(4..4 + len)?;
    (!name.is_empty() && name.iter().all(|b| b.is_ascii_graphic())).then(|| String::from_utf8_lossy(name).into_owned())
}

fn parse_hosts(field: &str) -> Result<HostPatterns, String> {
    if field.starts_with("|1|") {
        return match HostPatterns::from_str(field) {
            Ok(h @ HostPatterns::HashedName { .. }) => Ok(h),
            _ => Err("a hashed host name (|1|SALT|HASH) that does not decode".into()),
        };
    }
    if field.starts_with('|') {
        return Err("an unknown hashed host name format (only |1| exists)".into());
    }
    let patterns: Vec<String> = field.split(',').map(str::to_string).collect();
    if let Some(bad) = patterns.iter().find(|p| p.is_empty() || *p == "!") {
        return Err(format!("an empty host pattern in {field:?}{}", if bad == "!" { " (a lone !)" } else { "" }));
    }
    Ok(HostPatterns::Patterns(patterns))
}

/// Algorithms ssh-key decodes: a key of one of these that does not decode is damaged.
fn known_algorithm(name: &str) -> bool {
    matches!(
        name,
        "ssh-ed25519"
            | "ssh-rsa"
            | "ssh-dss"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
            | "sk-ssh-ed25519@openssh.com"
            | "sk-ecdsa-sha2-nistp256@openssh.com"
    )
}

/// Parses arbitrary bytes as a file (the fuzz target's entry point): never panics.
pub fn fuzz_parse(data: &[u8]) {
    let file = KnownHostsFile::from_bytes(data);
    for (_, entry) in file.entries() {
        let _ = super::pattern::matches(&entry.hosts, "web-1", 22);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0";

    fn entry(line: &str) -> Entry {
        match parse_line(line) {
            Line::Entry(e) => *e,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn every_syntax() {
        let e = entry(&format!("web-1,10.0.1.23 ssh-ed25519 {ED} root@web-1"));
        assert_eq!(e.hosts, HostPatterns::Patterns(vec!["web-1".into(), "10.0.1.23".into()]));
        assert_eq!((e.key_type.as_str(), e.comment.as_str(), e.marker), ("ssh-ed25519", "root@web-1", None));
        assert!(e.key.is_some());
        let e = entry(&format!("  [bastion]:2222\tssh-ed25519   {ED}  two words \r"));
        assert_eq!(e.hosts, HostPatterns::Patterns(vec!["[bastion]:2222".into()]));
        assert_eq!(e.comment, "two words");
        let e = entry(&format!("@cert-authority *.example.com,!bad.example.com ssh-ed25519 {ED}"));
        assert_eq!(e.marker, Some(Marker::CertAuthority));
        assert_eq!(e.hosts, HostPatterns::Patterns(vec!["*.example.com".into(), "!bad.example.com".into()]));
        assert_eq!(entry(&format!("@revoked * ssh-ed25519 {ED}")).marker, Some(Marker::Revoked));
        let e = entry(&format!("|1|JfKTdBh7rNbXkVAQCRp4OQoPfmI=|USECr3SWf1JUPsms5AqfD5QfxkM= ssh-ed25519 {ED}"));
        assert!(matches!(e.hosts, HostPatterns::HashedName { .. }));
        // An algorithm ssh-key does not know is still an entry (its blob names it).
        let e = entry("host ssh-future-key AAAADnNzaC1mdXR1cmUta2V5AAAAAQA=");
        assert_eq!((e.key_type.as_str(), e.key.is_none()), ("ssh-future-key", true));
        assert_eq!(parse_line(""), Line::Blank);
        assert_eq!(parse_line(" \t"), Line::Blank);
        assert_eq!(parse_line("  # a comment"), Line::Comment);
    }

    #[test]
    fn malformed_lines_say_why() {
        let cases = [
            ("web-1", "no key"),
            ("web-1 ssh-ed25519", "no key"),
            ("@revoked", "nothing after"),
            ("@trusted web-1 ssh-ed25519 AAAA", "unknown marker"),
            ("|1|bad|hash ssh-ed25519 AAAA", "does not decode"),
            ("|2|x|y ssh-ed25519 AAAA", "unknown hashed"),
            ("a,,b ssh-ed25519 AAAA", "empty host pattern"),
            ("a,! ssh-ed25519 AAAA", "lone !"),
            ("web-1 ssh-ed25519 AAAA-not-base64", "not base64"),
            ("web-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlI", "does not decode"),
        ];
        for (line, why) in cases {
            match parse_line(line) {
                Line::Malformed(reason) => assert!(reason.contains(why), "{line}: {reason}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let wrong = format!("web-1 ssh-rsa {ED}");
        assert!(matches!(parse_line(&wrong), Line::Malformed(r) if r.contains("holds a ssh-ed25519 key")));
    }

    #[test]
    fn file_keeps_numbers_and_text() {
        let text = format!("# c\n\nweb-1 ssh-ed25519 {ED}\ngarbage\n");
        let f = KnownHostsFile::parse(&text);
        assert_eq!(f.lines.len(), 4);
        assert_eq!(f.entries().map(|(n, _)| n).collect::<Vec<_>>(), [3]);
        assert!(matches!(f.lines[3].2, Line::Malformed(_)));
        assert_eq!(f.lines[3].1, "garbage");
    }

    /// See: issue 14 (§5). A line that is not UTF-8 used to fail the whole audit.
    #[test]
    fn issue_14_a_line_that_is_not_utf8_is_reported_and_the_rest_read() {
        let mut bytes = format!("web-1 ssh-ed25519 {ED}\r\n").into_bytes();
        bytes.extend_from_slice(b"caf\xe9 ssh-ed25519 AAAA\n");
        bytes.extend_from_slice(format!("web-2 ssh-ed25519 {ED}").as_bytes());
        let f = KnownHostsFile::from_bytes(&bytes);
        assert_eq!(f.entries().map(|(n, _)| n).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(f.lines[1].2, Line::Malformed("not UTF-8 text (byte 0xe9 at column 4)".into()));
        assert_eq!(f.lines[0].1, format!("web-1 ssh-ed25519 {ED}"), "the text has no line ending");
        assert_eq!(f.raw_line(0), format!("web-1 ssh-ed25519 {ED}\r\n").as_bytes());
        assert_eq!(f.raw_line(1), b"caf\xe9 ssh-ed25519 AAAA\n");
        assert!(!f.final_newline);
        let all: Vec<u8> = (0..f.lines.len()).flat_map(|i| f.raw_line(i).to_vec()).collect();
        assert_eq!(all, bytes, "the raw lines are the file");
    }

    #[test]
    fn no_input_panics() {
        let alphabet: &[u8] = b"@|1, \t#!*?[]:-abcAAAAC3Nz=+/\n\r\xff";
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..3000 {
            let line: Vec<u8> = (0..(x % 120))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    alphabet[(x as usize) % alphabet.len()]
                })
                .collect();
            fuzz_parse(&line);
            let mut with_key = line.clone();
            with_key.extend_from_slice(format!(" ssh-ed25519 {ED}").as_bytes());
            fuzz_parse(&with_key);
        }
    }
}
