//! `DescribeKeyPairs` (EC2 query protocol): `KeyName.N`, `KeyPairId.N`, `Filter.N` (`key-name`,
//! `key-pair-id`, `fingerprint`, `key-type`), `IncludePublicKey`, with the element names
//! aws-sdk-ec2 reads (`keySet/item/{keyPairId, keyName, keyFingerprint, keyType, tagSet,
//! publicKey, createTime}`). Unlike DescribeInstances it has no pagination.
//!
//! `ImportKeyPair` (`KeyName`, `PublicKeyMaterial`, base64 of the key file's bytes on the wire)
//! answers `keyFingerprint`, `keyName`, `keyPairId`, computed by EC2's imported-key rules
//! ([`KeyPairSpec::fingerprint`]); `DeleteKeyPair` (`KeyName` or `KeyPairId`) answers `return`
//! and `keyPairId`, and succeeds for an unknown name as EC2 does (`keys-and-shell.md` §3). Key
//! pairs are per Region: each Region's lab holds its own, in [`State::key_pairs`].

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{Values, checked};
use super::key_material::{NOT_A_KEY, openssh_line};
use super::query::{dry_run, err, list, ok, param};
use super::xml_escape;
use crate::inventory::KeyPairSpec;
use crate::state::{State, lock};

/// `KeyName`: "Up to 255 ASCII characters" (API reference), no leading or trailing spaces
/// (`keys-and-shell.md` §3).
const MAX_KEY_NAME: usize = 255;

const KNOWN_FILTERS: &[&str] = &["key-name", "key-pair-id", "fingerprint", "key-type"];

pub(super) fn describe(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let key_pairs = &lock(&state.key_pairs).clone();
    let names = list(params, "KeyName");
    if let Some(name) = names.iter().find(|n| !key_pairs.iter().any(|k| k.name == **n)) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidKeyPair.NotFound",
            &format!("The key pair '{name}' does not exist"),
        );
    }
    let ids = list(params, "KeyPairId");
    if let Some(id) = ids.iter().find(|id| !key_pairs.iter().any(|k| k.key_pair_id() == **id)) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidKeyPair.NotFound",
            &format!("The key pair ID '{id}' does not exist"),
        );
    }
    let filters = match checked(params, KNOWN_FILTERS) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let include_public_key = param(params, "IncludePublicKey") == Some("true");
    let mut xml = String::from("<keySet>");
    for k in key_pairs {
        let named = names.is_empty() || names.contains(&k.name);
        let by_id = ids.is_empty() || ids.contains(&k.key_pair_id());
        if named && by_id && filters.iter().all(|(name, values)| matches(k, name, values)) {
            item_xml(&mut xml, k, include_public_key);
        }
    }
    xml.push_str("</keySet>");
    ok("DescribeKeyPairs", state, &xml)
}

fn matches(k: &KeyPairSpec, filter: &str, values: &Values) -> bool {
    match filter {
        "key-name" => values.matches(&k.name),
        "key-pair-id" => values.matches(&k.key_pair_id()),
        "fingerprint" => values.matches(&k.fingerprint()),
        "key-type" => values.matches(k.key_type()),
        _ => false,
    }
}

fn item_xml(xml: &mut String, k: &KeyPairSpec, include_public_key: bool) {
    let e = xml_escape;
    let _ = write!(
        xml,
        "<item><keyPairId>{}</keyPairId><keyName>{}</keyName><keyFingerprint>{}</keyFingerprint>\
         <keyType>{}</keyType><tagSet/>",
        e(&k.key_pair_id()),
        e(&k.name),
        e(&k.fingerprint()),
        k.key_type(),
    );
    if include_public_key {
        let _ = write!(xml, "<publicKey>{}</publicKey>", e(&k.public_key_material()));
    }
    let _ = write!(xml, "<createTime>{}</createTime></item>", e(&k.create_time));
}

/// `ImportKeyPair`: checks in EC2's order of parameters, then the key, then the name's
/// uniqueness in this Region.
pub(super) fn import(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let missing = |name: &str| {
        err(StatusCode::BAD_REQUEST, "MissingParameter", &format!("The request must contain the parameter {name}"))
    };
    let Some(name) = param(params, "KeyName") else { return missing("KeyName") };
    let Some(material) = param(params, "PublicKeyMaterial") else { return missing("PublicKeyMaterial") };
    if name.is_empty() || name.len() > MAX_KEY_NAME || !name.is_ascii() || name.trim() != name {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            &format!(
                "Value ({name}) for parameter KeyName is invalid. Key names are 1 to {MAX_KEY_NAME} ASCII characters without leading or trailing spaces."
            ),
        );
    }
    // The SDK base64-encodes the blob; material that is not base64 never reached EC2 as a key.
    let Some(line) = crate::base64::decode(material).as_deref().and_then(openssh_line) else {
        return err(StatusCode::BAD_REQUEST, "InvalidKey.Format", NOT_A_KEY);
    };
    let mut key_pairs = lock(&state.key_pairs);
    if key_pairs.iter().any(|k| k.name == name) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidKeyPair.Duplicate",
            &format!("The keypair '{name}' already exists."),
        );
    }
    let spec = KeyPairSpec {
        name: name.to_string(),
        public_key: line,
        id: Some(format!("key-{:017x}", rand::random::<u64>() & 0x0fff_ffff_ffff_ffff)),
        fingerprint: None,
        create_time: iso8601(state.now()),
    };
    let xml = format!(
        "<keyFingerprint>{}</keyFingerprint><keyName>{}</keyName><keyPairId>{}</keyPairId>",
        xml_escape(&spec.fingerprint()),
        xml_escape(&spec.name),
        xml_escape(&spec.key_pair_id()),
    );
    key_pairs.push(spec);
    drop(key_pairs);
    ok("ImportKeyPair", state, &xml)
}

/// `DeleteKeyPair` by `KeyName` or `KeyPairId`.
pub(super) fn delete(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let (name, id) = (param(params, "KeyName"), param(params, "KeyPairId"));
    if name.is_none() && id.is_none() {
        return err(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "The request must contain the parameter KeyName or KeyPairId",
        );
    }
    let mut key_pairs = lock(&state.key_pairs);
    let found =
        key_pairs.iter().position(|k| Some(k.name.as_str()) == name || Some(k.key_pair_id()) == id.map(str::to_string));
    let removed = found.map(|n| key_pairs.remove(n));
    drop(key_pairs);
    let id_xml =
        removed.map(|k| format!("<keyPairId>{}</keyPairId>", xml_escape(&k.key_pair_id()))).unwrap_or_default();
    ok("DeleteKeyPair", state, &format!("<return>true</return>{id_xml}"))
}

/// `2026-11-23T13:00:00.000Z`, as `createTime` is written.
fn iso8601(secs: u64) -> String {
    let c = crate::civil_time::from_unix(secs);
    format!("{}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}
