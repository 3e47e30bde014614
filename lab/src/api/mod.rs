//! The AWS API doubles (EC2, EC2 Instance Connect, SSM, STS) on one HTTP endpoint, routed like the real protocols
//! are: awsJson1_1 by `X-Amz-Target`; form posts by the SigV4 credential scope's service: `sts` to the STS double
//! (awsQuery), anything else to EC2 (the EC2 query protocol, by the form's `Action`) (`../shared/spec/aws-apis.md` §1).
//!
//! Every request, in order: no `Authorization` → `MissingAuthenticationToken`; the fault knobs (`Faults`); the access
//! key (`iam::authenticate`: expired session credentials, unknown keys at STS); IAM denials (`Faults::deny`); then the
//! double. Each is logged with the access key of its `Credential=`.

mod ec2;
mod filters;
mod iam;
mod instance_connect;
mod instance_connect_endpoints;
mod instance_types;
mod key_pairs;
mod security_groups;
mod ssm;
mod sts;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::state::State;

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
    Router::new().route("/", post(dispatch)).with_state(state)
}

pub(crate) async fn dispatch(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (access_key, scope_service) = authorization.as_deref().map(crate::identity::credential).unwrap_or_default();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (protocol, service, operation, params) = match &target {
        Some(t) => {
            let (svc, op) = t.split_once('.').unwrap_or((t.as_str(), ""));
            let service = match svc {
                "AWSEC2InstanceConnectService" => "ec2-instance-connect",
                "AmazonSSM" => "ssm",
                other => other,
            };
            (Protocol::Json, service.to_string(), op.to_string(), Vec::new())
        }
        None => {
            let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
            match scope_service.as_str() {
                "sts" => (Protocol::AwsQuery, "sts".to_string(), action, params),
                _ => (Protocol::Query, "ec2".to_string(), action, params),
            }
        }
    };

    let (latency, fault) = {
        let mut f = state.faults();
        let fault = if f.down {
            Some(Fault::Down)
        } else if f.throttle_next > 0 {
            f.throttle_next -= 1;
            Some(Fault::Throttle)
        } else if f.fail_next > 0 && f.fail_only.as_deref().is_none_or(|op| op == operation) {
            f.fail_next -= 1;
            Some(Fault::Fail)
        } else {
            None
        };
        (f.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let response = if authorization.is_none() {
        error(protocol, StatusCode::FORBIDDEN, "MissingAuthenticationToken", "Request is missing Authentication Token")
    } else if let Some(fault) = fault {
        fault.response(protocol)
    } else if let Some(refusal) = iam::authenticate(&state, protocol, &access_key) {
        refusal
    } else if state.denied(&format!("{service}:{operation}")) {
        iam::denied(
            &state,
            iam::Request {
                protocol,
                service: &service,
                operation: &operation,
                access_key: &access_key,
                params: &params,
                body: &body,
            },
        )
    } else {
        match (protocol, service.as_str()) {
            (Protocol::Json, "ec2-instance-connect") => instance_connect::handle(&state, &operation, &body),
            (Protocol::Json, "ssm") => ssm::handle(&state, &operation, &body),
            (Protocol::Query, _) => ec2::handle(&state, &operation, &params),
            (Protocol::AwsQuery, _) => sts::handle(&state, &operation, &params, &access_key),
            _ => error(
                protocol,
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                &format!("unknown target {target:?}"),
            ),
        }
    };
    state.record(&service, &operation, response.status().as_u16(), &access_key);
    response
}

enum Fault {
    Down,
    Throttle,
    Fail,
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
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>lab-{}</RequestID></Response>",
                xml_escape(code),
                xml_escape(message),
                status.as_u16()
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
