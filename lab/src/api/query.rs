//! The EC2 query protocol's shared parts, for every EC2 action's double: reading `Action=…&Key=…`
//! parameters (`param`, `Prefix.N` lists), EC2's XML answer and error shapes, `DryRun`, and the
//! instance-id check every action makes (`../shared/spec/aws-apis.md` §1.3).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Protocol, error};
use crate::state::State;

const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub(super) fn err(status: StatusCode, code: &str, message: &str) -> Response {
    error(Protocol::Query, status, code, message)
}

pub(super) fn ok(action: &str, state: &State, inner: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{XMLNS}\"><requestId>{}</requestId>{inner}</{action}Response>",
        state.next_id("")
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

pub(super) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `Prefix.1`, `Prefix.2`, ... in index order.
pub(super) fn list(params: &[(String, String)], prefix: &str) -> Vec<String> {
    (1..).map_while(|i| param(params, &format!("{prefix}.{i}")).map(str::to_string)).collect()
}

/// The answer to `DryRun=true` (EC2's "would have succeeded"), if the request asks for one.
pub(super) fn dry_run(params: &[(String, String)]) -> Option<Response> {
    (param(params, "DryRun") == Some("true")).then(|| {
        err(StatusCode::PRECONDITION_FAILED, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    })
}
/// EC2's answer to an instance id that is not `i-` and 8 or 17 lower-case hex digits
/// (`InvalidInstanceID.Malformed`, `Invalid id: "…"`), the same for every EC2 action.
pub(super) fn malformed_instance_id(id: &str) -> Option<Response> {
    let hex = id.strip_prefix("i-").unwrap_or_default();
    let well_formed =
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (!well_formed)
        .then(|| err(StatusCode::BAD_REQUEST, "InvalidInstanceID.Malformed", &format!("Invalid id: \"{id}\"")))
}
