//! `Faults::leak`: answers that echo the caller's credentials, in the request's protocol, for the
//! broker's tests that no secret reaches its stderr, its log or its messages.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Protocol, xml_escape};
use crate::identity::Caller;
use crate::state::{LeakKind, State};

/// The header the SDKs read the request id from.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-amzn-requestid");

/// The answer of a leaking call signed with `access_key` and carrying `token`.
pub(super) fn answer(state: &State, protocol: Protocol, kind: LeakKind, access_key: &str, token: &str) -> Response {
    let secret = match state.caller(access_key) {
        Caller::User => crate::SECRET_ACCESS_KEY.to_string(),
        Caller::Role(r) | Caller::Expired(r) => r.secret_access_key,
        Caller::Unknown => String::new(),
    };
    let request_id = state.next_id("lab-leak-");
    let fields = [("AccessKeyId", access_key), ("SecretAccessKey", secret.as_str()), ("SessionToken", token)];
    let xml_fields: String = fields.iter().map(|(k, v)| format!("<{k}>{}</{k}>", xml_escape(v))).collect();
    let message = format!("The security token included in the request is invalid: {token}");
    let (status, content_type, body) = match (kind, protocol) {
        (LeakKind::ServiceError, Protocol::Query) => (
            StatusCode::BAD_REQUEST,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>AuthFailure</Code><Message>{}</Message>{xml_fields}</Error></Errors><RequestID>{request_id}</RequestID></Response>",
                xml_escape(&message)
            ),
        ),
        (LeakKind::ServiceError, Protocol::AwsQuery) => (
            StatusCode::FORBIDDEN,
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>{}</Message>{xml_fields}</Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                xml_escape(&message)
            ),
        ),
        (LeakKind::ServiceError, Protocol::Json) => {
            let mut body = serde_json::json!({ "__type": "UnrecognizedClientException", "Message": message });
            for (k, v) in fields {
                body[k] = v.into();
            }
            (StatusCode::BAD_REQUEST, "application/x-amz-json-1.1", body.to_string())
        }
        (LeakKind::NoErrorCode, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            format!(
                "<html><body><h1>502 Bad Gateway</h1><pre>x-amz-security-token: {token}\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}</pre></body></html>"
            ),
        ),
        (LeakKind::Truncated, Protocol::Json) => (
            StatusCode::OK,
            "application/x-amz-json-1.1",
            format!(
                "{{\"Credentials\":{{\"AccessKeyId\":\"{access_key}\",\"SecretAccessKey\":\"{secret}\",\"SessionToken\":\"{token}\""
            ),
        ),
        (LeakKind::Truncated, _) => {
            (StatusCode::OK, "text/xml", format!("<Response><Credentials>{xml_fields}<Expiration>"))
        }
    };
    let headers = [(header::CONTENT_TYPE, content_type.to_string()), (REQUEST_ID, request_id)];
    (status, headers, body).into_response()
}
