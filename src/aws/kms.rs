//! KMS `GenerateDataKey` for Session Manager's session encryption (`keys-and-shell.md` §6,
//! `ssm-data-channel.md` §11.2). The plaintext key leaves here in a zeroizing buffer and is never
//! printed.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::{Aws, AwsError, ErrorKind, clean};
use crate::ssm::crypto::{DATA_KEY_LEN, DataKey};

const SERVICE: &str = "KMS";

/// Why no data key could be had: each names the key and what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KmsError {
    /// The identity may not use the key.
    #[error(
        "the account's Session Manager preferences encrypt sessions with the KMS key {key}, and this identity \
         lacks kms:GenerateDataKey on {key}: grant it in an IAM policy and in the key's policy (the instance's \
         role also needs kms:Decrypt on it), or use ssh over --route ssm, which Session Manager never encrypts \
         with KMS"
    )]
    Denied {
        /// The key as the agent named it.
        key: String,
        /// KMS's answer.
        #[source]
        source: AwsError,
    },
    /// The key does not exist (or is in another account or Region without an ARN).
    #[error(
        "the KMS key {key} named by the account's Session Manager preferences does not exist here: fix kmsKeyId \
         in the SSM-SessionManagerRunShell document"
    )]
    NotFound {
        /// The key.
        key: String,
        /// KMS's answer.
        #[source]
        source: AwsError,
    },
    /// The key exists but cannot be used now (disabled, pending deletion, not a symmetric key).
    #[error(
        "the KMS key {key} named by the account's Session Manager preferences cannot be used ({code}): enable \
         it, or name a usable symmetric key in the SSM-SessionManagerRunShell document"
    )]
    Unusable {
        /// The key.
        key: String,
        /// `DisabledException`, `KMSInvalidStateException`, `InvalidKeyUsageException`.
        code: String,
        /// KMS's answer.
        #[source]
        source: AwsError,
    },
    /// Any other failure of the call.
    #[error("KMS GenerateDataKey for the key {key} failed")]
    Call {
        /// The key.
        key: String,
        /// KMS's answer.
        #[source]
        source: AwsError,
    },
    /// KMS answered without the key, or with one of another size.
    #[error("KMS GenerateDataKey for the key {key} answered without a {DATA_KEY_LEN}-byte data key")]
    Malformed {
        /// The key.
        key: String,
    },
}

impl Aws {
    /// Generates a 64-byte data key under `key_id`, bound to `context`.
    pub(crate) async fn generate_data_key(
        &self,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        let key = clean(key_id, 2048);
        let out = self
            .kms()
            .generate_data_key()
            .key_id(key_id)
            .number_of_bytes(DATA_KEY_LEN as i32)
            .set_encryption_context(Some(context.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .send()
            .await
            .map_err(|err| classify(key.clone(), AwsError::from_sdk(SERVICE, "GenerateDataKey", err)))?;
        let plaintext = Zeroizing::new(out.plaintext.map(|b| b.into_inner()).unwrap_or_default());
        let ciphertext = out.ciphertext_blob.map(|b| b.into_inner()).unwrap_or_default();
        if plaintext.len() != DATA_KEY_LEN || ciphertext.is_empty() {
            return Err(KmsError::Malformed { key });
        }
        tracing::debug!(key = %key, "KMS data key generated for the session");
        Ok(DataKey { ciphertext, plaintext })
    }
}

/// Which [`KmsError`] an AWS error is, by its code (never its text).
fn classify(key: String, source: AwsError) -> KmsError {
    let code = source.code().unwrap_or_default().to_string();
    match (source.kind(), code.as_str()) {
        (ErrorKind::Denied, _) => KmsError::Denied { key, source },
        (_, "NotFoundException") => KmsError::NotFound { key, source },
        (_, "DisabledException" | "KMSInvalidStateException" | "InvalidKeyUsageException") => {
            KmsError::Unusable { key, code, source }
        }
        _ => KmsError::Call { key, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str) -> AwsError {
        AwsError::Service {
            service: SERVICE,
            operation: "GenerateDataKey",
            code: code.into(),
            message: "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:GenerateDataKey"
                .into(),
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn access_denied_names_the_key_and_the_missing_permission() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/k1";
        let e = classify(key.into(), service("AccessDeniedException"));
        assert!(matches!(e, KmsError::Denied { .. }));
        let text = e.to_string();
        assert!(text.contains(&format!("lacks kms:GenerateDataKey on {key}")), "{text}");
        assert!(text.contains("kms:Decrypt"), "{text}");
        // The code and the request id stay in the chain, for support.
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert!(chain.contains("AccessDeniedException") && chain.contains("req-1"), "{chain}");
    }

    #[test]
    fn other_codes_by_kind() {
        assert!(matches!(classify("k".into(), service("NotFoundException")), KmsError::NotFound { .. }));
        assert!(matches!(classify("k".into(), service("DisabledException")), KmsError::Unusable { .. }));
        assert!(matches!(classify("k".into(), service("KMSInvalidStateException")), KmsError::Unusable { .. }));
        assert!(matches!(classify("k".into(), service("KMSInternalException")), KmsError::Call { .. }));
        let e = classify("k".into(), service("DisabledException"));
        assert!(e.to_string().contains("(DisabledException)"));
    }
}
