//! The instance metadata service double: one per instance, with the IMDSv2 token and the
//! `managed-ssh-keys` paths Instance Connect uses (`../shared/spec/aws-apis.md` §3.5).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, put};

use crate::keys_blob;
use crate::state::State;

#[derive(Clone)]
struct Imds {
    state: Arc<State>,
    instance: String,
    token: String,
}

/// Router for one instance's IMDS.
pub(crate) fn router(state: Arc<State>, instance: String) -> Router {
    let token = state.next_id("imds-token-");
    Router::new()
        .route("/latest/api/token", put(token_handler))
        .route("/latest/meta-data/", any(meta_data_root))
        .route("/latest/meta-data/{*path}", any(meta_data))
        .with_state(Imds { state, instance, token })
}

/// `PUT /latest/api/token`. A request carrying `X-Forwarded-For` is refused with 403 (IMDSv2
/// refuses tokens to anything that went through a proxy: EC2 User Guide, "How Instance Metadata
/// Service Version 2 works").
async fn token_handler(AxState(imds): AxState<Imds>, headers: HeaderMap) -> Response {
    if headers.contains_key("x-forwarded-for") {
        imds.state.record("imds", "PUT api/token", StatusCode::FORBIDDEN.as_u16(), "");
        return StatusCode::FORBIDDEN.into_response();
    }
    let ttl = headers
        .get("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let status = match ttl {
        Some(1..=21600) => StatusCode::OK,
        _ => StatusCode::BAD_REQUEST,
    };
    imds.state.record("imds", "PUT api/token", status.as_u16(), "");
    if status != StatusCode::OK {
        return status.into_response();
    }
    imds.token.clone().into_response()
}

async fn meta_data(
    AxState(imds): AxState<Imds>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let response = answer(&imds, &method, &headers, &path);
    imds.state.record("imds", &format!("{method} {path}"), response.status().as_u16(), "");
    response
}

async fn meta_data_root(state: AxState<Imds>, method: Method, headers: HeaderMap) -> Response {
    meta_data(state, method, headers, Path(String::new())).await
}

fn answer(imds: &Imds, method: &Method, headers: &HeaderMap, path: &str) -> Response {
    // IMDSv2 required: no or wrong token is 401.
    if headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) != Some(imds.token.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(inst) = imds.state.inventory.get(&imds.instance) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = path.trim_end_matches('/');
    let region = &imds.state.inventory.region;
    let text = match path {
        // Directory listings: one child a line, sub-directories with a trailing `/`.
        "" => {
            let mut children = vec!["ami-id", "hostname", "instance-id", "instance-type", "local-hostname"];
            children.extend(inst.private_ip.map(|_| "local-ipv4"));
            children.extend(["managed-ssh-keys/", "placement/"]);
            children.extend(inst.public_ip.map(|_| "public-ipv4"));
            children.push("services/");
            children.join("\n")
        }
        "placement" => "availability-zone".into(),
        "services" => "domain".into(),
        "managed-ssh-keys" => "active-keys/\nsigner-cert\nsigner-ocsp".into(),
        "managed-ssh-keys/active-keys" => {
            let now = imds.state.now();
            let mut users: Vec<String> = (imds.state.pushed_keys().into_iter())
                .filter(|k| k.instance == inst.id && k.expires > now)
                .map(|k| format!("{}/", k.user))
                .collect();
            users.sort();
            users.dedup();
            users.join("\n")
        }
        "ami-id" => crate::api::IMAGE_ID.into(),
        "hostname" | "local-hostname" => inst.private_dns_name(region),
        "instance-type" => inst.instance_type.clone(),
        "local-ipv4" if inst.private_ip.is_some() => inst.private_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "public-ipv4" if inst.public_ip.is_some() => inst.public_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "instance-id" => inst.id.clone(),
        "placement/availability-zone" => inst.az.clone(),
        "services/domain" => "amazonaws.com".into(),
        "managed-ssh-keys/signer-cert" | "managed-ssh-keys/signer-ocsp" => String::new(),
        _ => match path.strip_prefix("managed-ssh-keys/active-keys/") {
            Some(user) if !user.contains('/') => {
                let keys = imds.state.active_keys(&inst.id, user);
                if keys.is_empty() {
                    return StatusCode::NOT_FOUND.into_response();
                }
                keys_blob::format(&keys, &imds.state.inventory.account)
            }
            _ => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    text.into_response()
}
