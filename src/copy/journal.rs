//! The resume journal: which ranges of which source are already in the part file. Pure: the
//! text in, a decision out; the driver reads and writes it (`DST.ec2-broker-journal`, 0600,
//! replaced atomically after every range).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Suffix of the part file beside the destination.
pub(crate) const PART_SUFFIX: &str = ".ec2-broker-part";
/// Suffix of the journal beside the destination.
pub(crate) const JOURNAL_SUFFIX: &str = ".ec2-broker-journal";
/// The format this build writes and reads.
const VERSION: u32 = 1;

/// What is known about one interrupted copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// Format version.
    pub(crate) version: u32,
    /// The source as given (`HOST:PATH` or a local path).
    pub(crate) source: String,
    /// The source's size when the copy started.
    pub(crate) size: u64,
    /// The source's modification time (seconds) when the copy started.
    pub(crate) mtime: i64,
    /// The range size the ranges were cut with.
    pub(crate) range_size: u64,
    /// Indexes of the ranges verified and in the part file.
    pub(crate) done: BTreeSet<u32>,
}

impl Journal {
    /// A journal for a copy starting now, no range done.
    pub(crate) fn new(source: String, size: u64, mtime: i64, range_size: u64) -> Journal {
        Journal { version: VERSION, source, size, mtime, range_size, done: BTreeSet::new() }
    }

    /// The journal's text.
    pub(crate) fn to_text(&self) -> String {
        // Serialising plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

/// Whether to start over or go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// No earlier copy: a new part file.
    Fresh,
    /// An earlier copy that cannot be trusted or used: why, then a new part file.
    Restart(&'static str),
    /// Go on with the part file; these ranges are done.
    Resume(BTreeSet<u32>),
}

/// Decides from the journal's text (if any), the copy about to start and the part file's length
/// (if it exists). Resumes only when source, size, modification time and range size all match
/// and the part file has the file's length.
pub(crate) fn decide(found: Option<&str>, want: &Journal, part_len: Option<u64>, ranges: usize) -> Start {
    let Some(text) = found else {
        return Start::Fresh;
    };
    let Ok(old) = serde_json::from_str::<Journal>(text) else {
        return Start::Restart("the journal of the earlier copy cannot be read");
    };
    if old.version != VERSION || old.source != want.source || old.range_size != want.range_size {
        return Start::Restart("the earlier copy was of another source or cut differently");
    }
    if old.size != want.size || old.mtime != want.mtime {
        return Start::Restart("the source changed since the earlier copy (size or modification time)");
    }
    if part_len != Some(want.size) {
        return Start::Restart("the part file of the earlier copy is missing or has the wrong length");
    }
    if old.done.iter().any(|i| *i as usize >= ranges) {
        return Start::Restart("the journal of the earlier copy names ranges the file does not have");
    }
    Start::Resume(old.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_resumes_only_what_is_known_to_be_the_same() {
        let want = Journal::new("db-1:/x".into(), 1000, 7, 64);
        let mut old = want.clone();
        old.done.extend([0, 3]);
        let text = old.to_text();
        assert_eq!(decide(None, &want, None, 16), Start::Fresh);
        assert_eq!(decide(Some(&text), &want, Some(1000), 16), Start::Resume([0, 3].into()));
        assert!(matches!(decide(Some("{"), &want, Some(1000), 16), Start::Restart(_)));
        assert!(matches!(decide(Some(&text), &want, None, 16), Start::Restart(_)));
        assert!(matches!(decide(Some(&text), &want, Some(999), 16), Start::Restart(_)));
        assert!(matches!(decide(Some(&text), &want, Some(1000), 3), Start::Restart(_)));
        for changed in [
            Journal { mtime: 8, ..want.clone() },
            Journal { size: 1001, ..want.clone() },
            Journal { source: "db-2:/x".into(), ..want.clone() },
            Journal { range_size: 128, ..want.clone() },
        ] {
            let d = decide(Some(&text), &changed, Some(changed.size), 16);
            assert!(matches!(d, Start::Restart(_)), "{changed:?}: {d:?}");
        }
    }
}
