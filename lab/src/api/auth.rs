//! SigV4 verification of every API call (issue 18 item 9), with each service's own refusal: a
//! wrong secret, an unknown key, a missing session token or a clock more than 15 minutes off is
//! refused as the real endpoint refuses it, so credential bugs show up in tests.
//!
//! | refusal | EC2 (query) | awsJson (SSM, Instance Connect) | STS (awsQuery) |
//! |---|---|---|---|
//! | malformed header | 400 `IncompleteSignature` | 403 `IncompleteSignatureException` | 400 `IncompleteSignature` |
//! | unknown key, bad token | 401 `AuthFailure` | 400 `UnrecognizedClientException` | 403 `InvalidClientTokenId` |
//! | wrong signature, scope | 401 `AuthFailure` | 400 `InvalidSignatureException` | 403 `SignatureDoesNotMatch` |
//! | clock skew > 15 min | 400 `RequestExpired` | 400 `InvalidSignatureException` "Signature expired: …" | 403 `SignatureDoesNotMatch` "Signature expired: …" |
//!
//! Sources: the EC2 API reference's common client errors (`AuthFailure`, `RequestExpired`,
//! `IncompleteSignature`), the AWS common errors page (`InvalidClientTokenId`,
//! `SignatureDoesNotMatch`), and the texts services send, as SDK users quote them.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;

use super::{Protocol, error};
use crate::eice::sigv4::{amz_date_from_unix, unix_from_amz_date};
use crate::identity::Caller;
use crate::sigv4_header::{Authorization, MAX_SKEW_SECS, Request};
use crate::state::State;

const EC2_AUTH_FAILURE: &str = "AWS was not able to validate the provided access credentials";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
                        Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The header or `X-Amz-Date` is malformed or missing.
    Incomplete(String),
    /// No such access key, or an issued key without its session token.
    UnknownKey,
    /// The scope names another Region, service or date.
    Scope(String),
    /// `X-Amz-Date` is more than 15 minutes from the service's clock.
    Skewed { signed: String, now: u64, late: bool },
    /// The signature is not the one the key's secret gives.
    Mismatch,
}

/// Checks the request's SigV4 signature against the key's secret; `Some(refusal)` in the
/// protocol's shape when it fails. `service` is the signing name the endpoint expects.
pub(super) fn verify(
    state: &State,
    protocol: Protocol,
    service: &str,
    header: &str,
    request: &Request<'_>,
) -> Option<Response> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    check(state, service, header, request, now).err().map(|refusal| respond(protocol, refusal))
}

fn check(state: &State, service: &str, header: &str, request: &Request<'_>, now: u64) -> Result<(), Refusal> {
    let auth = Authorization::parse(header).map_err(Refusal::Incomplete)?;
    let header_value =
        |name: &str| (request.headers.iter()).find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let (secret, token) = match state.caller(&auth.access_key_id) {
        Caller::User => (crate::SECRET_ACCESS_KEY.to_string(), None),
        Caller::Role(r) | Caller::Expired(r) => (r.secret_access_key, Some(r.session_token)),
        Caller::Unknown => return Err(Refusal::UnknownKey),
    };
    if token.is_some() && header_value("x-amz-security-token") != token.as_deref() {
        return Err(Refusal::UnknownKey);
    }
    let amz_date = header_value("x-amz-date").ok_or_else(|| {
        Refusal::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        )
    })?;
    let signed = unix_from_amz_date(amz_date)
        .ok_or_else(|| Refusal::Incomplete(format!("X-Amz-Date '{amz_date}' is not yyyymmddThhmmssZ")))?;
    if signed + MAX_SKEW_SECS < now || signed > now + MAX_SKEW_SECS {
        return Err(Refusal::Skewed { signed: amz_date.into(), now, late: signed < now });
    }
    let region = &state.inventory.region;
    // STS's global endpoint and IAM (a global service) sign with us-east-1 whatever the
    // configured Region.
    if auth.region != *region && !(matches!(service, "sts" | "iam") && auth.region == "us-east-1") {
        return Err(Refusal::Scope(format!("Credential should be scoped to a valid region, not '{}'.", auth.region)));
    }
    if auth.service != service {
        return Err(Refusal::Scope(format!("Credential should be scoped to correct service: '{service}'.")));
    }
    if !amz_date.starts_with(&auth.scope_date) {
        return Err(Refusal::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.scope_date,
            &amz_date[..8]
        )));
    }
    let expected = auth.expected_signature(request, amz_date, &secret).map_err(|_| Refusal::Mismatch)?;
    if expected != auth.signature {
        return Err(Refusal::Mismatch);
    }
    Ok(())
}

fn respond(protocol: Protocol, refusal: Refusal) -> Response {
    use Protocol::{AwsQuery, Json, Query};
    let (status, code, message) = match (&refusal, protocol) {
        (Refusal::Incomplete(m), Query | AwsQuery) => (StatusCode::BAD_REQUEST, "IncompleteSignature", m.clone()),
        (Refusal::Incomplete(m), Json) => (StatusCode::FORBIDDEN, "IncompleteSignatureException", m.clone()),
        (Refusal::UnknownKey, Query) => (StatusCode::UNAUTHORIZED, "AuthFailure", EC2_AUTH_FAILURE.into()),
        (Refusal::UnknownKey, Json) => (StatusCode::BAD_REQUEST, "UnrecognizedClientException", INVALID_TOKEN.into()),
        (Refusal::UnknownKey, AwsQuery) => (StatusCode::FORBIDDEN, "InvalidClientTokenId", INVALID_TOKEN.into()),
        (Refusal::Scope(_) | Refusal::Mismatch, Query) => {
            (StatusCode::UNAUTHORIZED, "AuthFailure", EC2_AUTH_FAILURE.into())
        }
        (Refusal::Scope(m), Json) => (StatusCode::BAD_REQUEST, "InvalidSignatureException", m.clone()),
        (Refusal::Scope(m), AwsQuery) => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", m.clone()),
        (Refusal::Mismatch, Json) => (StatusCode::BAD_REQUEST, "InvalidSignatureException", MISMATCH.into()),
        (Refusal::Mismatch, AwsQuery) => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", MISMATCH.into()),
        (Refusal::Skewed { .. }, Query) => (StatusCode::BAD_REQUEST, "RequestExpired", "Request has expired.".into()),
        (Refusal::Skewed { signed, now, late }, Json) => {
            (StatusCode::BAD_REQUEST, "InvalidSignatureException", skew_message(signed, *now, *late))
        }
        (Refusal::Skewed { signed, now, late }, AwsQuery) => {
            (StatusCode::FORBIDDEN, "SignatureDoesNotMatch", skew_message(signed, *now, *late))
        }
    };
    error(protocol, status, code, &message)
}

/// The skew message: `Signature expired: <signed> is now earlier than <now - 15 min> (<now> -
/// 15 min.)`, or for a clock ahead `Signature not yet current: <signed> is still later than <now +
/// 15 min> (<now> + 15 min.)`.
fn skew_message(signed: &str, now: u64, late: bool) -> String {
    let minutes = MAX_SKEW_SECS / 60;
    if late {
        let bound = amz_date_from_unix(now - MAX_SKEW_SECS);
        format!(
            "Signature expired: {signed} is now earlier than {bound} ({} - {minutes} min.)",
            amz_date_from_unix(now)
        )
    } else {
        let bound = amz_date_from_unix(now + MAX_SKEW_SECS);
        format!(
            "Signature not yet current: {signed} is still later than {bound} ({} + {minutes} min.)",
            amz_date_from_unix(now)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_messages_name_both_times() {
        let now = unix_from_amz_date("20261123T083000Z").unwrap();
        assert_eq!(
            skew_message("20261123T080000Z", now, true),
            "Signature expired: 20261123T080000Z is now earlier than 20261123T081500Z (20261123T083000Z - 15 min.)"
        );
        assert!(skew_message("20261123T090000Z", now, false).starts_with("Signature not yet current"));
    }
}
