//! EC2 key pairs: `ImportKeyPair` and one key pair by name from `DescribeKeyPairs`
//! (`../shared/spec/keys-and-shell.md` §3). The material goes as the file's bytes,
//! base64-encoded on the wire as the API's blob type wants.

use russh::keys::ssh_key::encoding::base64::{Base64, Encoding};

use super::ec2_query::{Params, shapes};
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
        // The API takes the key's text base64-encoded (the SDK's `Blob` did the same).
        let params = Params::new("ImportKeyPair")
            .value("KeyName", name)
            .value("PublicKeyMaterial", Base64::encode_string(material));
        let out: shapes::ImportKeyPair = self.ec2().call(&params).await?;
        Ok(Imported { key_pair_id: out.key_pair_id, fingerprint: out.key_fingerprint })
    }

    /// The key pair `name` with its public key, `None` when the Region has none of that name.
    pub(crate) async fn key_pair_named(&self, name: &str) -> Result<Option<KeyPair>, AwsError> {
        let params = Params::new("DescribeKeyPairs").list("KeyName", &[name]).value("IncludePublicKey", "true");
        let out: shapes::DescribeKeyPairs = match self.ec2().call(&params).await {
            Ok(out) => out,
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(out.key_set.item.into_iter().find(|k| k.key_name.as_deref() == Some(name)).map(|k| KeyPair {
            name: name.to_string(),
            public_key: k.public_key,
            fingerprint: k.key_fingerprint,
        }))
    }
}
