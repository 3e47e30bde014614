//! EC2 key pairs: `ImportKeyPair` and one key pair by name from `DescribeKeyPairs`
//! (`../shared/spec/keys-and-shell.md` §3). The material goes as the file's bytes; the SDK
//! base64-encodes the blob on the wire.

use aws_sdk_ec2::primitives::Blob;

use super::known_hosts::KeyPair;
use super::{Aws, AwsError};

/// The error code of a name already taken in the Region.
pub(crate) const DUPLICATE: &str = "InvalidKeyPair.Duplicate";

/// What ImportKeyPair answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Imported {
    /// `keyPairId`.
    pub(crate) key_pair_id: Option<String>,
    /// `keyFingerprint`, by EC2's rules for imported keys.
    pub(crate) fingerprint: Option<String>,
}

impl Aws {
    /// Imports `material` as the key pair `name` in this client's Region.
    pub(crate) async fn import_key_pair(&self, name: &str, material: &[u8]) -> Result<Imported, AwsError> {
        let out = (self.ec2().import_key_pair().key_name(name).public_key_material(Blob::new(material)).send().await)
            .map_err(|e| AwsError::from_sdk("EC2", "ImportKeyPair", e))?;
        Ok(Imported {
            key_pair_id: out.key_pair_id().map(str::to_string),
            fingerprint: out.key_fingerprint().map(str::to_string),
        })
    }

    /// The key pair `name` with its public key, `None` when the Region has none of that name.
    pub(crate) async fn key_pair_named(&self, name: &str) -> Result<Option<KeyPair>, AwsError> {
        let answer = self.ec2().describe_key_pairs().key_names(name).include_public_key(true).send().await;
        let out = match answer.map_err(|e| AwsError::from_sdk("EC2", "DescribeKeyPairs", e)) {
            Ok(out) => out,
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out.key_pairs().iter().find(|k| k.key_name() == Some(name)).map(|k| KeyPair {
            name: name.to_string(),
            public_key: k.public_key().map(str::to_string),
            fingerprint: k.key_fingerprint().map(str::to_string),
        }))
    }
}
