//! What IAM decides before a double answers: whether the access key is usable (session
//! credentials AssumeRole issued expire; STS knows every key) and the denials of
//! `Faults::deny`, each in the shape the service's protocol uses.

use axum::http::StatusCode;
use axum::response::Response;

use super::{Protocol, error};
use crate::identity::Caller;
use crate::state::State;

const EXPIRED: &str = "The security token included in the request is expired";
const INVALID: &str = "The security token included in the request is invalid.";

/// The refusal of a request signed with an expired issued key (any service: EC2 400
/// `ExpiredToken`, awsJson 400 `ExpiredTokenException`, STS 403 `ExpiredToken`), or, at STS only,
/// with a key the lab never issued (403 `InvalidClientTokenId`). `None`: go on.
pub(super) fn authenticate(state: &State, protocol: Protocol, access_key: &str) -> Option<Response> {
    match (state.caller(access_key), protocol) {
        (Caller::Expired(_), Protocol::AwsQuery) => {
            Some(error(protocol, StatusCode::FORBIDDEN, "ExpiredToken", EXPIRED))
        }
        (Caller::Expired(_), Protocol::Query) => {
            Some(error(protocol, StatusCode::BAD_REQUEST, "ExpiredToken", EXPIRED))
        }
        (Caller::Expired(_), Protocol::Json) => {
            Some(error(protocol, StatusCode::BAD_REQUEST, "ExpiredTokenException", EXPIRED))
        }
        (Caller::Unknown, Protocol::AwsQuery) => {
            Some(error(protocol, StatusCode::FORBIDDEN, "InvalidClientTokenId", INVALID))
        }
        _ => None,
    }
}

/// A request IAM denies.
pub(super) struct Request<'a> {
    pub(super) protocol: Protocol,
    /// The IAM service prefix (`ec2`, `ec2-instance-connect`, `ssm`, `sts`, `iam`).
    pub(super) service: &'a str,
    pub(super) operation: &'a str,
    pub(super) access_key: &'a str,
    /// The form (query protocols).
    pub(super) params: &'a [(String, String)],
    /// The JSON body (awsJson).
    pub(super) body: &'a [u8],
}

/// The answer to a call whose action is in `Faults::deny`, naming the caller (the lab user, or
/// the assumed role of an issued key).
pub(super) fn denied(state: &State, r: Request<'_>) -> Response {
    let caller = state.caller_arn(r.access_key);
    let action = format!("{}:{}", r.service, r.operation);
    let because = format!("because no identity-based policy allows the {action} action");
    match r.protocol {
        Protocol::Query => error(
            r.protocol,
            StatusCode::FORBIDDEN,
            "UnauthorizedOperation",
            &format!(
                "You are not authorized to perform this operation. User: {caller} is not authorized to perform: {action} {because}"
            ),
        ),
        // EC2 Instance Connect's model has its own denial, AuthException (aws-apis.md §2.1).
        Protocol::Json if r.service == "ec2-instance-connect" => error(
            r.protocol,
            StatusCode::FORBIDDEN,
            "AuthException",
            &format!(
                "User: {caller} is not authorized to perform: {action} on resource: {} {because}",
                json_resource(state, r.service, r.body)
            ),
        ),
        Protocol::Json => error(
            r.protocol,
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            &format!(
                "User: {caller} is not authorized to perform: {action} on resource: {} {because}",
                json_resource(state, r.service, r.body)
            ),
        ),
        Protocol::AwsQuery if r.service == "iam" => {
            let account = &state.inventory.account;
            let member = |name: &str| r.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let resource = match (member("InstanceProfileName"), member("RoleName")) {
                (Some(p), _) => format!("arn:aws:iam::{account}:instance-profile/{p}"),
                (None, Some(role)) => format!("arn:aws:iam::{account}:role/{role}"),
                (None, None) => format!("arn:aws:iam::{account}:*"),
            };
            let message =
                format!("User: {caller} is not authorized to perform: {action} on resource: {resource} {because}");
            error(r.protocol, StatusCode::FORBIDDEN, "AccessDenied", &message)
        }
        Protocol::AwsQuery => {
            let role = r.params.iter().find(|(k, _)| k == "RoleArn").map(|(_, v)| v.as_str());
            let on = role.map(|arn| format!(" on resource: {arn}")).unwrap_or_default();
            let message = format!("User: {caller} is not authorized to perform: {action}{on}");
            error(r.protocol, StatusCode::FORBIDDEN, "AccessDenied", &message)
        }
    }
}

/// The resource an awsJson call acts on: the instance (`Target`, `InstanceId`), the SSM session
/// (`SessionId`), the KMS key (`KeyId`, or the key of Decrypt's blob), else every resource of the service in the account and Region.
fn json_resource(state: &State, service: &str, body: &[u8]) -> String {
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    if service == "kms"
        && let Some(key_arn) = super::kms::resource_arn(state, body)
    {
        return key_arn;
    }
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let member = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(instance) = member("Target").or_else(|| member("InstanceId")) {
        return format!("arn:aws:ec2:{region}:{account}:instance/{instance}");
    }
    if let Some(session) = member("SessionId") {
        return format!("arn:aws:ssm:{region}:{account}:session/{session}");
    }
    format!("arn:aws:{service}:{region}:{account}:*")
}
