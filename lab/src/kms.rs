//! The KMS double's logic (`keys-and-shell.md` §6): the inventory's keys (`[[kms_key]]`), how a
//! `KeyId` resolves (id, key ARN, `alias/…`, alias ARN), key states, and GenerateDataKey and
//! Decrypt as the API (`crate::api::kms`) and the SSM agent double (`crate::ssm`) both use them.
//!
//! Ciphertext blobs are lab-only: `LABKMS1`, the key id's length and the key id, then
//! `nonce ‖ AES-256-GCM(plaintext) ‖ tag` under a key derived from the lab's random master key,
//! the key id and the encryption context (sorted pairs). So Decrypt recovers the key from the
//! blob alone, and any change to the context (a missing or extra pair, a changed value or key
//! case) fails it with `InvalidCiphertextException`, as real KMS does.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::inventory::{Inventory, KmsKeySpec};
use crate::ssm::crypto;

/// Magic prefix of the lab's ciphertext blobs.
const BLOB_MAGIC: &[u8] = b"LABKMS1";
/// `NumberOfBytes` range of GenerateDataKey (KMS API reference).
const MAX_DATA_KEY_BYTES: usize = 1024;

/// The lab's KMS master key (random per lab).
pub(crate) struct Kms {
    master: [u8; 32],
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kms(<redacted>)")
    }
}

impl Default for Kms {
    fn default() -> Self {
        Kms { master: rand::random() }
    }
}

/// A KMS error in the API's words: the `__type` and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KmsError {
    /// `ValidationException`.
    Validation(String),
    /// `NotFoundException`.
    NotFound(String),
    /// `DisabledException`.
    Disabled(String),
    /// `KMSInvalidStateException` (e.g. pending deletion).
    InvalidState(String),
    /// `InvalidCiphertextException`: corrupt blob or encryption-context mismatch (KMS says no more).
    InvalidCiphertext,
    /// `IncorrectKeyException`: Decrypt's `KeyId` is not the key that encrypted the blob.
    IncorrectKey,
}

impl KmsError {
    /// The error code (`__type`).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            KmsError::Validation(_) => "ValidationException",
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::IncorrectKey => "IncorrectKeyException",
        }
    }

    /// The message (empty for `InvalidCiphertextException`, as KMS sends it).
    pub(crate) fn message(&self) -> String {
        match self {
            KmsError::Validation(m) | KmsError::NotFound(m) | KmsError::Disabled(m) | KmsError::InvalidState(m) => {
                m.clone()
            }
            KmsError::InvalidCiphertext => String::new(),
            KmsError::IncorrectKey => {
                "The key ID in the request does not identify a CMK that can perform this operation.".into()
            }
        }
    }
}

/// A data key as GenerateDataKey returns it.
#[derive(Clone)]
pub(crate) struct DataKey {
    /// The key's ARN (`KeyId` of the answer).
    pub(crate) key_arn: String,
    /// The plaintext data key.
    pub(crate) plaintext: Vec<u8>,
    /// The ciphertext blob.
    pub(crate) blob: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("key_arn", &self.key_arn).field("plaintext", &"<redacted>").finish()
    }
}

impl Kms {
    /// GenerateDataKey: `bytes` random bytes under `key_id`, bound to `context`.
    pub(crate) fn generate_data_key(
        &self,
        inventory: &Inventory,
        key_id: &str,
        bytes: usize,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        if !(1..=MAX_DATA_KEY_BYTES).contains(&bytes) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{bytes}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {}",
                if bytes == 0 { "greater than or equal to 1" } else { "less than or equal to 1024" }
            )));
        }
        let key = usable(inventory, key_id)?;
        let plaintext: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
        let sealed = crypto::seal_with(&self.blob_key(&key.id, context), rand::random(), &plaintext);
        let blob = [BLOB_MAGIC, &[key.id.len() as u8], key.id.as_bytes(), &sealed].concat();
        Ok(DataKey { key_arn: key.arn(&inventory.region, &inventory.account), plaintext, blob })
    }

    /// Decrypt: the key that made `blob` (its ARN) and the plaintext, if `context` is the one it
    /// was made with and `key_id` (when given) names that key.
    pub(crate) fn decrypt(
        &self,
        inventory: &Inventory,
        blob: &[u8],
        context: &BTreeMap<String, String>,
        key_id: Option<&str>,
    ) -> Result<(String, Vec<u8>), KmsError> {
        let rest = blob.strip_prefix(BLOB_MAGIC).ok_or(KmsError::InvalidCiphertext)?;
        let (&len, rest) = rest.split_first().ok_or(KmsError::InvalidCiphertext)?;
        let (id, sealed) = rest.split_at_checked(usize::from(len)).ok_or(KmsError::InvalidCiphertext)?;
        let id = std::str::from_utf8(id).map_err(|_| KmsError::InvalidCiphertext)?;
        if let Some(wanted) = key_id
            && resolve(inventory, wanted)?.id != id
        {
            return Err(KmsError::IncorrectKey);
        }
        let key = usable(inventory, id)?;
        let plaintext =
            crypto::open_with(&self.blob_key(id, context), sealed).map_err(|_| KmsError::InvalidCiphertext)?;
        Ok((key.arn(&inventory.region, &inventory.account), plaintext))
    }

    fn blob_key(&self, key_id: &str, context: &BTreeMap<String, String>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.master);
        for part in std::iter::once(key_id).chain(context.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

/// `KeyMaterialId` of a key: 64 lower-case hex digits, stable per key.
pub(crate) fn key_material_id(key_arn: &str) -> String {
    Sha256::digest(format!("key-material:{key_arn}")).iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves a `KeyId` (id, key ARN, `alias/<name>`, alias ARN) to a key of the inventory.
pub(crate) fn resolve<'a>(inventory: &'a Inventory, key_id: &str) -> Result<&'a KmsKeySpec, KmsError> {
    let (region, account) = (&inventory.region, &inventory.account);
    let arn_prefix = format!("arn:aws:kms:{region}:{account}:");
    let local = key_id.strip_prefix(&arn_prefix).unwrap_or(key_id);
    if let Some(alias) = local.strip_prefix("alias/").map(|name| format!("alias/{name}")) {
        return (inventory.kms_keys.iter())
            .find(|k| k.aliases.contains(&alias))
            .ok_or_else(|| KmsError::NotFound(format!("Alias {arn_prefix}{alias} is not found.")));
    }
    let id = local.strip_prefix("key/").unwrap_or(local);
    if local.starts_with("arn:") || id.contains([':', '/']) || id.is_empty() {
        return Err(KmsError::NotFound(format!("Invalid keyId '{key_id}'")));
    }
    (inventory.kms_keys.iter())
        .find(|k| k.id == id)
        .ok_or_else(|| KmsError::NotFound(format!("Key '{arn_prefix}key/{id}' does not exist")))
}

/// A resolved key that may be used for cryptography (state `Enabled`).
fn usable<'a>(inventory: &'a Inventory, key_id: &str) -> Result<&'a KmsKeySpec, KmsError> {
    let key = resolve(inventory, key_id)?;
    let arn = key.arn(&inventory.region, &inventory.account);
    match key.state.as_str() {
        "Enabled" => Ok(key),
        "Disabled" => Err(KmsError::Disabled(format!("{arn} is disabled."))),
        "PendingDeletion" => Err(KmsError::InvalidState(format!("{arn} is pending deletion."))),
        other => Err(KmsError::InvalidState(format!("{arn} is {other}."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    fn inventory() -> Inventory {
        Inventory::from_toml(&format!(
            r#"
            [[kms_key]]
            id = "{ID}"
            aliases = ["alias/ssm"]
            [[kms_key]]
            id = "0000aaaa-0000-0000-0000-000000000001"
            state = "Disabled"
            [[kms_key]]
            id = "0000aaaa-0000-0000-0000-000000000002"
            state = "PendingDeletion"
            "#
        ))
        .unwrap()
    }

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn key_ids_resolve_by_id_arn_alias_and_alias_arn() {
        let inv = inventory();
        let arn = format!("arn:aws:kms:eu-west-1:{}:key/{ID}", inv.account);
        for id in [
            ID.to_string(),
            arn.clone(),
            "alias/ssm".into(),
            format!("arn:aws:kms:eu-west-1:{}:alias/ssm", inv.account),
        ] {
            assert_eq!(resolve(&inv, &id).map(|k| k.arn(&inv.region, &inv.account)), Ok(arn.clone()), "{id}");
        }
        let nope = resolve(&inv, "alias/nope").unwrap_err();
        assert_eq!(
            (nope.code(), nope.message()),
            ("NotFoundException", format!("Alias arn:aws:kms:eu-west-1:{}:alias/nope is not found.", inv.account))
        );
        assert_eq!(resolve(&inv, "0000aaaa-0000-0000-0000-00000000dead").unwrap_err().code(), "NotFoundException");
        assert_eq!(resolve(&inv, "arn:aws:kms:us-east-1:1:key/x").unwrap_err().code(), "NotFoundException");
    }

    #[test]
    fn data_keys_decrypt_only_with_the_same_context_and_key() {
        let (inv, kms) = (inventory(), Kms::default());
        let context = ctx(&[("aws:ssm:SessionId", "s-1"), ("aws:ssm:TargetId", "i-1")]);
        let key = kms.generate_data_key(&inv, "alias/ssm", 64, &context).unwrap();
        assert_eq!(key.plaintext.len(), 64);
        assert!(key.key_arn.ends_with(ID));
        assert_eq!(kms.decrypt(&inv, &key.blob, &context, None), Ok((key.key_arn.clone(), key.plaintext.clone())));
        assert_eq!(kms.decrypt(&inv, &key.blob, &context, Some(ID)).map(|r| r.1), Ok(key.plaintext.clone()));
        let other = ctx(&[("aws:ssm:SessionId", "s-1"), ("aws:ssm:TargetId", "i-2")]);
        assert_eq!(kms.decrypt(&inv, &key.blob, &other, None), Err(KmsError::InvalidCiphertext));
        let more = ctx(&[("aws:ssm:SessionId", "s-1"), ("aws:ssm:TargetId", "i-1"), ("aws:ssm:RandomChallenge", "x")]);
        assert_eq!(kms.decrypt(&inv, &key.blob, &more, None), Err(KmsError::InvalidCiphertext));
        assert_eq!(
            kms.decrypt(&inv, &key.blob, &context, Some("0000aaaa-0000-0000-0000-000000000001")),
            Err(KmsError::IncorrectKey)
        );
        let mut corrupt = key.blob.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(kms.decrypt(&inv, &corrupt, &context, None), Err(KmsError::InvalidCiphertext));
        assert_eq!(kms.decrypt(&inv, b"junk", &context, None), Err(KmsError::InvalidCiphertext));
        assert_eq!(
            Kms::default().decrypt(&inv, &key.blob, &context, None),
            Err(KmsError::InvalidCiphertext),
            "another lab's blob"
        );
    }

    #[test]
    fn key_states_and_sizes() {
        let (inv, kms) = (inventory(), Kms::default());
        let none = BTreeMap::new();
        let disabled = kms.generate_data_key(&inv, "0000aaaa-0000-0000-0000-000000000001", 64, &none).unwrap_err();
        assert_eq!(disabled.code(), "DisabledException");
        assert!(disabled.message().ends_with(":key/0000aaaa-0000-0000-0000-000000000001 is disabled."));
        let pending = kms.generate_data_key(&inv, "0000aaaa-0000-0000-0000-000000000002", 64, &none).unwrap_err();
        assert_eq!(
            (pending.code(), pending.message().ends_with("is pending deletion.")),
            ("KMSInvalidStateException", true)
        );
        assert_eq!(kms.generate_data_key(&inv, ID, 0, &none).unwrap_err().code(), "ValidationException");
        assert_eq!(kms.generate_data_key(&inv, ID, 1025, &none).unwrap_err().code(), "ValidationException");
        assert_eq!(key_material_id("a").len(), 64);
    }
}
