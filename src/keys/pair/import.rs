//! `ec2-broker key import`: one key imported as a key pair into several Regions at once, each
//! Region's outcome told apart (imported, already there with this key, already there with
//! another key, failed with code, request id and advice), as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::public_key::{ImportableKey, KeyKind};
use crate::aws::key_pairs::DUPLICATE;
use crate::aws::{Aws, AwsError};

/// `--json`'s schema name.
pub(crate) const SCHEMA: &str = "ec2-broker.key-import/1";

/// What happened in one Region.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// ImportKeyPair succeeded.
    Imported {
        /// `keyPairId`.
        key_pair_id: Option<String>,
        /// The fingerprint EC2 returned.
        fingerprint: Option<String>,
    },
    /// The name was taken (`InvalidKeyPair.Duplicate`) by a key pair holding this key.
    ExistsSameKey {
        /// Its fingerprint as DescribeKeyPairs lists it.
        fingerprint: Option<String>,
    },
    /// The name was taken by a key pair holding another key.
    ExistsOtherKey {
        /// Its fingerprint as DescribeKeyPairs lists it.
        fingerprint: Option<String>,
    },
    /// The call failed.
    Failed {
        /// The AWS error code, when the service answered.
        code: Option<String>,
        /// The request id, for AWS support.
        request_id: Option<String>,
        /// The whole error.
        error: String,
        /// What to do, when the cause is recognised.
        hint: Option<String>,
    },
}

/// One Region's line of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct RegionResult {
    /// The Region.
    pub(crate) region: String,
    /// What happened there.
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
}

impl RegionResult {
    /// Whether the Region now holds this key under the name.
    pub(crate) fn holds_key(&self) -> bool {
        matches!(self.outcome, Outcome::Imported { .. } | Outcome::ExistsSameKey { .. })
    }
}

/// Imports `key` as `name` with every client (one per Region), concurrently.
pub(crate) async fn import_everywhere(clients: &[Aws], name: &str, key: &ImportableKey) -> Vec<RegionResult> {
    let tries = clients.iter().map(|aws| async move {
        RegionResult { region: aws.region.clone(), outcome: import_one(aws, name, key).await }
    });
    futures_util::future::join_all(tries).await
}

async fn import_one(aws: &Aws, name: &str, key: &ImportableKey) -> Outcome {
    match aws.import_key_pair(name, key.material()).await {
        Ok(done) => Outcome::Imported { key_pair_id: done.key_pair_id, fingerprint: done.fingerprint },
        Err(e) if e.code() == Some(DUPLICATE) => match aws.key_pair_named(name).await {
            Ok(Some(pair)) => {
                let same = match &pair.public_key {
                    Some(line) => key.same_as_line(line),
                    None => pair.fingerprint.as_deref() == Some(key.ec2_fingerprint().as_str()),
                };
                match same {
                    true => Outcome::ExistsSameKey { fingerprint: pair.fingerprint },
                    false => Outcome::ExistsOtherKey { fingerprint: pair.fingerprint },
                }
            }
            // Deleted between the two calls, or not visible: report the first error.
            Ok(None) => failed(e),
            Err(describe) => failed(describe),
        },
        Err(e) => failed(e),
    }
}

fn failed(e: AwsError) -> Outcome {
    let code = e.code().map(str::to_string);
    let request_id = e.request_id().map(str::to_string);
    let err = anyhow::Error::new(e);
    Outcome::Failed { code, request_id, error: format!("{err:#}"), hint: crate::error::hint(&err) }
}

/// 0 when every Region holds the key under the name, else 1.
pub(crate) fn exit_code(results: &[RegionResult]) -> u8 {
    u8::from(!results.iter().all(RegionResult::holds_key))
}

/// The report as a table: the key, the fingerprint EC2 shows, a line per Region.
pub(crate) fn table(name: &str, key: &ImportableKey, results: &[RegionResult]) -> String {
    let expected = key.ec2_fingerprint();
    let kind = match key.kind() {
        KeyKind::Rsa { bits } => format!("RSA {bits}-bit"),
        KeyKind::Ed25519 => "Ed25519".into(),
    };
    let mut out = format!("key pair {name}: {kind} key, EC2 fingerprint {expected} ({})\n", key.ssh_fingerprint());
    let width = results.iter().map(|r| r.region.len()).max().unwrap_or(6).max(6);
    let _ = writeln!(out, "{:width$}  RESULT", "REGION");
    for r in results {
        let text = match &r.outcome {
            Outcome::Imported { key_pair_id, fingerprint } => {
                let mut t = format!("imported as {}", key_pair_id.as_deref().unwrap_or("(no id)"));
                if fingerprint.as_deref().is_some_and(|f| f != expected) {
                    let _ =
                        write!(t, "; EC2 shows fingerprint {}, not {expected}", fingerprint.as_deref().unwrap_or(""));
                }
                t
            }
            Outcome::ExistsSameKey { .. } => "already exists, same key".into(),
            Outcome::ExistsOtherKey { fingerprint } => format!(
                "already exists, another key (fingerprint {}): choose another NAME, or delete that key pair first",
                fingerprint.as_deref().unwrap_or("unknown")
            ),
            Outcome::Failed { error, hint, .. } => match hint {
                Some(h) => format!("failed: {error} (hint: {h})"),
                None => format!("failed: {error}"),
            },
        };
        let _ = writeln!(out, "{:width$}  {}", r.region, crate::text::printable(&text));
    }
    out
}

/// The report as JSON (`"schema": "ec2-broker.key-import/1"`).
pub(crate) fn json(name: &str, key: &ImportableKey, results: &[RegionResult]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        schema: &'static str,
        name: &'a str,
        key_type: &'static str,
        fingerprint: String,
        ssh_fingerprint: String,
        regions: &'a [RegionResult],
    }
    let doc = Doc {
        schema: SCHEMA,
        name,
        key_type: key.key_type(),
        fingerprint: key.ec2_fingerprint(),
        ssh_fingerprint: key.ssh_fingerprint(),
        regions: results,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
