//! The AWS API doubles (EC2, EC2 Instance Connect, SSM, KMS, STS, IAM, and the IAM Identity Center portal's
//! `GET /federation/credentials`, see `sso.rs`) on one HTTP endpoint, routed like the real protocols
//! are: awsJson1_1 by `X-Amz-Target`; form posts by the SigV4 credential scope's service: `sts` to the STS double
//! and `iam` to the IAM double (awsQuery), anything else to EC2 (the EC2 query protocol, by the form's `Action`) (`../shared/spec/aws-apis.md` §1).
//!
//! Every request, in order: no `Authorization` → `MissingAuthenticationToken` (but STS's unsigned
//! `AssumeRoleWithWebIdentity`, `sts_web_identity.rs`); the fault knobs (`Faults`, `leak` last); the SigV4
//! signature (`auth::verify`: unknown keys, wrong secrets, scopes and clock skew, in each service's words); expired
//! session credentials (`iam::authenticate`); IAM denials (`Faults::deny`); then the double. Each is logged with the
//! access key of its `Credential=`, and every answer carries an `x-amzn-RequestId` header.

mod auth;
mod ec2;
mod filters;
mod iam;
mod iam_service;
mod instance_connect;
mod instance_connect_endpoints;
mod instance_filters;

pub(crate) use instance_filters::IMAGE_ID;
mod instance_types;
mod key_material;
mod key_pairs;
mod kms;
mod leak;
mod public_key;
mod query;
mod run_command;
mod security_groups;
mod ssm;
mod ssm_agent;
mod ssm_documents;
mod sso;
mod sts;
mod sts_web_identity;
#[cfg(test)]
mod tests;
mod vpc;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::sigv4_header;
use crate::state::State;

/// The STS action that is made without a signature (its token is the proof).
const UNSIGNED_STS_ACTION: &str = "AssumeRoleWithWebIdentity";

/// Which wire protocol a request used, so errors are shaped to match.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// awsJson1_1 (Instance Connect, SSM).
    Json,
    /// The EC2 query protocol.
    Query,
    /// awsQuery (STS): errors are `<ErrorResponse>`.
    AwsQuery,
}

/// Builds the router for the API endpoint.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", any(dispatch))
        .route("/federation/credentials", get(sso::get_role_credentials))
        .with_state(state)
}

pub(crate) async fn dispatch(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = answer(&state, &method, &uri, &headers, &body).await;
    with_request_id(response).await
}

async fn answer(state: &Arc<State>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (access_key, scope_service) = authorization.as_deref().map(crate::identity::credential).unwrap_or_default();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (protocol, service, operation, params) = match &target {
        Some(t) => {
            let (svc, op) = t.split_once('.').unwrap_or((t.as_str(), ""));
            let service = match svc {
                "AWSEC2InstanceConnectService" => "ec2-instance-connect",
                "AmazonSSM" => "ssm",
                "TrentService" => "kms",
                other => other,
            };
            (Protocol::Json, service.to_string(), op.to_string(), Vec::new())
        }
        None => {
            let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
            match scope_service.as_str() {
                "sts" => (Protocol::AwsQuery, "sts".to_string(), action, params),
                // The one unsigned STS call: no credential scope to route by.
                "" if action == UNSIGNED_STS_ACTION => (Protocol::AwsQuery, "sts".to_string(), action, params),
                "iam" => (Protocol::AwsQuery, "iam".to_string(), action, params),
                _ => (Protocol::Query, "ec2".to_string(), action, params),
            }
        }
    };

    let (latency, fault) = {
        let mut f = state.faults();
        let fault = if f.down {
            Some(Fault::Down)
        } else if f.throttle_next > 0 && f.throttle_only.as_deref().is_none_or(|op| op == operation) {
            f.throttle_next -= 1;
            Some(Fault::Throttle)
        } else if f.fail_next > 0 && f.fail_only.as_deref().is_none_or(|op| op == operation) {
            f.fail_next -= 1;
            Some(Fault::Fail)
        } else if let Some(leak) = f.leak.as_mut().filter(|l| l.answers > 0)
            && leak.operation.as_deref().is_none_or(|op| op == operation)
        {
            leak.answers -= 1;
            Some(Fault::Leak(leak.kind))
        } else {
            None
        };
        (f.latency + f.latency_by_operation.get(&operation).copied().unwrap_or_default(), fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let header_list: Vec<(String, String)> = (headers.iter())
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let signed = sigv4_header::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &header_list,
        body,
    };
    let response = if let Some(authorization) = authorization.as_deref() {
        if let Some(Fault::Leak(kind)) = fault {
            let token = headers.get("x-amz-security-token").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            leak::answer(state, protocol, kind, &access_key, token.as_deref().unwrap_or(""))
        } else if let Some(fault) = fault {
            fault.response(protocol)
        } else if let Some(refusal) = auth::verify(state, protocol, &service, authorization, &signed) {
            refusal
        } else if let Some(refusal) = iam::authenticate(state, protocol, &access_key) {
            refusal
        } else if state.denied(&format!("{service}:{operation}")) {
            iam::denied(
                state,
                iam::Request {
                    protocol,
                    service: &service,
                    operation: &operation,
                    access_key: &access_key,
                    params: &params,
                    body,
                },
            )
        } else {
            match (protocol, service.as_str()) {
                (Protocol::Json, "ec2-instance-connect") => instance_connect::handle(state, &operation, body),
                (Protocol::Json, "ssm") => ssm::handle(state, &operation, body),
                (Protocol::Json, "kms") => kms::handle(state, &operation, body),
                (Protocol::Query, _) => ec2::handle(state, &operation, &params),
                (Protocol::AwsQuery, "iam") => iam_service::handle(state, &operation, &params),
                (Protocol::AwsQuery, _) => sts::handle(state, &operation, &params, &access_key),
                _ => error(
                    protocol,
                    StatusCode::BAD_REQUEST,
                    "UnknownOperationException",
                    &format!("unknown target {target:?}"),
                ),
            }
        }
    } else if operation == UNSIGNED_STS_ACTION && protocol == Protocol::AwsQuery {
        match fault {
            Some(fault) => fault.response(protocol),
            None => sts_web_identity::assume_role_with_web_identity(state, &params),
        }
    } else {
        error(protocol, StatusCode::FORBIDDEN, "MissingAuthenticationToken", "Request is missing Authentication Token")
    };
    state.record(&service, &operation, response.status().as_u16(), &access_key);
    response
}

/// Adds the `x-amzn-RequestId` header every AWS response carries (the awsJson SDKs read the
/// request id only there), with the id the body names when it names one (`requestId`,
/// `RequestID`, `RequestId`), else a fresh one. A handler that set the header keeps its own.
async fn with_request_id(response: Response) -> Response {
    if response.headers().contains_key("x-amzn-requestid") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response body").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let in_xml = ["requestId", "RequestID", "RequestId"].iter().find_map(|name| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let len = text[start..].find('<')?;
        Some(text[start..start + len].to_string())
    });
    let in_json = || {
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        value.get("RequestId")?.as_str().map(str::to_string)
    };
    let id = in_xml.or_else(in_json).unwrap_or_else(request_id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert("x-amzn-requestid", value);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A fresh request id, shaped like AWS's (a version-4 UUID).
pub(crate) fn request_id() -> String {
    let n = rand::random::<u128>();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 96,
        n >> 80 & 0xffff,
        n >> 68 & 0xfff,
        n >> 56 & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

enum Fault {
    Down,
    Throttle,
    Fail,
    Leak(crate::state::LeakKind),
}

impl Fault {
    fn response(&self, p: Protocol) -> Response {
        match (self, p) {
            (Fault::Down, _) => {
                error(p, StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "The service is unavailable.")
            }
            (Fault::Throttle, Protocol::Query) => {
                error(p, StatusCode::SERVICE_UNAVAILABLE, "RequestLimitExceeded", "Request limit exceeded.")
            }
            (Fault::Throttle, Protocol::Json) => {
                error(p, StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", "Rate exceeded")
            }
            (Fault::Throttle, Protocol::AwsQuery) => error(p, StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
            (Fault::Fail, Protocol::Query) => {
                error(p, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "An internal error has occurred.")
            }
            (Fault::Fail, Protocol::Json) => {
                error(p, StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "Internal service error")
            }
            (Fault::Fail, Protocol::AwsQuery) => {
                error(p, StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "An internal error occurred.")
            }
            // Answered by `leak::answer`, which needs the request.
            (Fault::Leak(_), _) => error(p, StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "leak"),
        }
    }
}

/// An error in the request's protocol: awsJson `__type` + `Message`, EC2's `<Response><Errors>`, or STS's
/// `<ErrorResponse>`.
fn error(p: Protocol, status: StatusCode, code: &str, message: &str) -> Response {
    match p {
        Protocol::AwsQuery => sts::error(status, code, message),
        Protocol::Json => json(status, serde_json::json!({ "__type": code, "Message": message })),
        Protocol::Query => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
                xml_escape(code),
                xml_escape(message),
                request_id()
            );
            (status, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
        }
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], value.to_string()).into_response()
}

/// Escapes text for XML element content.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
