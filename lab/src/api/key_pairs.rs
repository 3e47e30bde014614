//! `DescribeKeyPairs` (EC2 query protocol): `KeyName.N`, `KeyPairId.N`, `Filter.N` (`key-name`,
//! `key-pair-id`, `fingerprint`, `key-type`), `IncludePublicKey`, with the element names
//! aws-sdk-ec2 reads (`keySet/item/{keyPairId, keyName, keyFingerprint, keyType, tagSet,
//! publicKey, createTime}`). Unlike DescribeInstances it has no pagination.

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::Response;

use super::filters::{Values, checked};
use super::query::{dry_run, err, list, ok, param};
use super::xml_escape;
use crate::inventory::KeyPairSpec;
use crate::state::State;

const KNOWN_FILTERS: &[&str] = &["key-name", "key-pair-id", "fingerprint", "key-type"];

pub(super) fn describe(state: &State, params: &[(String, String)]) -> Response {
    if let Some(refusal) = dry_run(params) {
        return refusal;
    }
    let key_pairs = &state.inventory.key_pairs;
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
