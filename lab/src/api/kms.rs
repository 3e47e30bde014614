//! KMS API double (`TrentService.*`, awsJson1_1, signing name `kms`, reached through
//! `AWS_ENDPOINT_URL_KMS`): GenerateDataKey and Decrypt with the validation and errors of
//! `../shared/spec/keys-and-shell.md` §6. The keys and the cryptography live in `crate::kms`;
//! IAM denials (`Faults::deny` of `kms:GenerateDataKey`, `kms:Decrypt`) are answered before this
//! file by `iam::denied`, naming the key ARN ([`resource_arn`]).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::json;
use crate::base64;
use crate::kms::{KmsError, key_material_id};
use crate::state::State;

/// `GrantTokens` may hold at most this many tokens (KMS API reference).
const MAX_GRANT_TOKENS: usize = 10;
/// `CiphertextBlob` length limit of Decrypt (KMS API reference).
const MAX_BLOB: usize = 6144;

pub(super) fn handle(state: &State, operation: &str, body: &[u8]) -> Response {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let answer = match operation {
        "GenerateDataKey" => serde_json::from_slice(body).map(|req| generate_data_key(state, req)),
        "Decrypt" => serde_json::from_slice(body).map(|req| decrypt(state, req)),
        _ => return fail("UnknownOperationException", &format!("{operation} is not supported by the lab")),
    };
    answer.unwrap_or_else(|e| fail("SerializationException", &format!("invalid request: {e}")))
}

/// The resource a KMS call acts on, for IAM's denial text: the key ARN the `KeyId` (or, for
/// Decrypt without one, the blob) names, if any.
pub(super) fn resource_arn(state: &State, body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    let inventory = &state.inventory;
    if let Some(id) = body.get("KeyId").and_then(|v| v.as_str()) {
        return crate::kms::resolve(inventory, id).ok().map(|k| k.arn(&inventory.region, &inventory.account));
    }
    let blob = base64::decode(body.get("CiphertextBlob")?.as_str()?)?;
    let id = blob.strip_prefix(b"LABKMS1")?.split_first().and_then(|(&n, rest)| rest.get(..usize::from(n)))?;
    let id = std::str::from_utf8(id).ok()?;
    crate::kms::resolve(inventory, id).ok().map(|k| k.arn(&inventory.region, &inventory.account))
}

fn fail(code: &str, message: &str) -> Response {
    json(StatusCode::BAD_REQUEST, json!({ "__type": code, "message": message }))
}

fn kms_error(e: &KmsError) -> Response {
    match e {
        KmsError::InvalidCiphertext => json(StatusCode::BAD_REQUEST, json!({ "__type": e.code() })),
        _ => fail(e.code(), &e.message()),
    }
}

fn validation(message: &str) -> Response {
    fail("ValidationException", message)
}

fn not_null(member: &str) -> Response {
    validation(&format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

fn dry_run() -> Response {
    json(
        StatusCode::PRECONDITION_FAILED,
        json!({ "__type": "DryRunOperationException", "message": "The request would have succeeded, but the DryRun option is set." }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyInput {
    key_id: Option<String>,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

fn generate_data_key(state: &State, req: GenerateDataKeyInput) -> Response {
    let Some(key_id) = req.key_id else {
        return not_null("keyId");
    };
    if let Some(e) = check_common(&key_id, &req.grant_tokens) {
        return e;
    }
    let bytes = match (req.number_of_bytes, req.key_spec.as_deref()) {
        (Some(n), None) => usize::try_from(n).unwrap_or(0),
        (None, Some("AES_256")) => 32,
        (None, Some("AES_128")) => 16,
        (None, Some(other)) => {
            return validation(&format!(
                "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            ));
        }
        _ => return validation("Please specify either number of bytes or key spec."),
    };
    if req.dry_run {
        return dry_run();
    }
    match state.kms.generate_data_key(&state.inventory, &key_id, bytes, &req.encryption_context) {
        Ok(key) => json(
            StatusCode::OK,
            json!({
                "CiphertextBlob": base64::encode(&key.blob),
                "Plaintext": base64::encode(&key.plaintext),
                "KeyId": key.key_arn,
                "KeyMaterialId": key_material_id(&key.key_arn),
            }),
        ),
        Err(e) => kms_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptInput {
    ciphertext_blob: Option<String>,
    key_id: Option<String>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
    #[serde(default)]
    grant_tokens: Vec<String>,
    encryption_algorithm: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn decrypt(state: &State, req: DecryptInput) -> Response {
    let Some(blob) = req.ciphertext_blob else {
        return not_null("ciphertextBlob");
    };
    let Some(blob) = base64::decode(&blob).filter(|b| (1..=MAX_BLOB).contains(&b.len())) else {
        return validation(
            "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and 6144",
        );
    };
    if let Some(e) = req.key_id.as_deref().and_then(|k| check_common(k, &req.grant_tokens)) {
        return e;
    }
    const ALGORITHMS: [&str; 4] = ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"];
    match req.encryption_algorithm.as_deref() {
        None | Some("SYMMETRIC_DEFAULT") => {}
        Some(a) if ALGORITHMS.contains(&a) => return kms_error(&KmsError::IncorrectKey),
        Some(a) => {
            return validation(&format!(
                "1 validation error detected: Value '{a}' at 'encryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                ALGORITHMS.join(", ")
            ));
        }
    }
    if req.dry_run {
        return dry_run();
    }
    match state.kms.decrypt(&state.inventory, &blob, &req.encryption_context, req.key_id.as_deref()) {
        Ok((key_arn, plaintext)) => json(
            StatusCode::OK,
            json!({
                "KeyId": key_arn,
                "Plaintext": base64::encode(&plaintext),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "KeyMaterialId": key_material_id(&key_arn),
            }),
        ),
        Err(e) => kms_error(&e),
    }
}

/// `KeyId` length (1–2048) and `GrantTokens` count (≤ 10).
fn check_common(key_id: &str, grant_tokens: &[String]) -> Option<Response> {
    if !(1..=2048).contains(&key_id.len()) {
        return Some(validation(
            "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048",
        ));
    }
    (grant_tokens.len() > MAX_GRANT_TOKENS).then(|| {
        validation(
            "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10",
        )
    })
}
