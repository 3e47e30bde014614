//! Every check of an `openTunnel` upgrade request, in the order the service applies them, and
//! the refusals. No I/O; the lab clock comes from `State::now`.
//!
//! | check (in order) | status | `ErrorCode` |
//! |---|---|---|
//! | path is not `/openTunnel` | 404 | `NotFound` |
//! | no `X-Amz-*` signing parameter at all | 403 | `MissingAuthenticationToken` |
//! | a signing parameter missing or malformed | 400 | `IncompleteSignature` |
//! | access key is neither the lab's nor issued by AssumeRole (with its session token) | 403 | `UnrecognizedClientException` |
//! | issued access key expired | 403 | `ExpiredTokenException` |
//! | scope service, Region or date wrong | 403 | `SignatureDoesNotMatch` |
//! | signature wrong | 403 | `SignatureDoesNotMatch` |
//! | `X-Amz-Date` + `X-Amz-Expires` before the lab clock | 403 | `RequestExpired` |
//! | `X-Amz-Date` more than 5 min after the lab clock | 403 | `SignatureDoesNotMatch` |
//! | tunnel parameter missing / invalid | 400 | `MissingParameter` / `InvalidParameter` |
//! | endpoint id unknown | 404 | `InvalidInstanceConnectEndpointId.NotFound` |
//! | `Host` is not that endpoint's `dnsName`/`fipsDnsName` | 400 | `InvalidParameter` |
//! | endpoint state does not take tunnels | 400 | `IncorrectState` |
//! | port not in `allowed_ports` | 400 | `InvalidParameter` |
//! | `privateIpAddress` is no instance of the endpoint's VPC | 400 | `InvalidParameter` |
//! | IAM: `ec2-instance-connect:OpenTunnel` in `Faults::deny` | 403 | `AccessDeniedException` |
//! | IAM cap: `maxTunnelDuration` missing or above it | 403 | `AccessDeniedException` |
//! | endpoint at its connection limit (checked by the service) | 429 | `ThrottlingException` |

use std::net::Ipv4Addr;
use std::time::Duration;

use super::sigv4::{Presigned, QueryError, amz_date_from_unix, decode_query};
use super::{EiceTunnelInfo, LOG_OPERATION, MAX_TUNNEL_DURATION, PATH, SIGNING_NAME};
use crate::identity::Caller;
use crate::state::State;

/// How far in the future `X-Amz-Date` may be (SigV4's clock-skew allowance).
const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// An accepted request: what the tunnel reaches and for how long.
#[derive(Debug, Clone)]
pub(super) struct Admitted {
    /// The endpoint.
    pub(super) endpoint_id: String,
    /// The endpoint's connection limit (before the fault override).
    pub(super) max_connections: usize,
    /// The instance whose private IPv4 `ip` is.
    pub(super) instance_id: String,
    /// `privateIpAddress`.
    pub(super) ip: Ipv4Addr,
    /// `remotePort`.
    pub(super) port: u16,
    /// `maxTunnelDuration`, else 3600 s.
    pub(super) duration: Duration,
}

/// A refused request: HTTP status and the JSON body's `ErrorCode` and `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) status: u16,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into() }
    }

    /// The connection limit is reached.
    pub(super) fn too_many(endpoint_id: &str, limit: usize) -> Self {
        Refusal::new(
            429,
            "ThrottlingException",
            format!(
                "The instance connect endpoint {endpoint_id} has reached its limit of {limit} concurrent connections. Close a connection and retry your request."
            ),
        )
    }

    /// The response body: `{"ErrorCode":"…","Message":"…"}`, as the real service answers
    /// (spec §4.1: clients show it as the error).
    pub(super) fn body(&self) -> String {
        serde_json::json!({ "ErrorCode": self.code, "Message": self.message }).to_string()
    }
}

/// Checks one upgrade request; fills `info` with what it read along the way.
pub(super) fn admit(
    state: &State,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    info: &mut EiceTunnelInfo,
) -> Result<Admitted, Refusal> {
    let params = decode_query(query);
    let raw = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    info.endpoint_id = raw("instanceConnectEndpointId").unwrap_or_default().into();
    info.private_ip = raw("privateIpAddress").unwrap_or_default().into();
    info.port = raw("remotePort").and_then(|v| v.parse().ok()).filter(|p| *p != 0);
    info.max_tunnel_duration = raw("maxTunnelDuration").and_then(|v| v.parse().ok());
    info.access_key = raw("X-Amz-Credential").and_then(|c| c.split('/').next()).unwrap_or_default().into();
    if path != PATH {
        return Err(Refusal::new(404, "NotFound", format!("No such resource: {path}. Tunnels open at {PATH}.")));
    }
    let p = Presigned::parse(query).map_err(|e| match e {
        QueryError::Unsigned => {
            Refusal::new(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
        }
        QueryError::Malformed(m) => Refusal::new(400, "IncompleteSignature", m),
    })?;
    check_signature(state, &p, path, headers)?;

    let missing =
        |name: &str| Refusal::new(400, "MissingParameter", format!("The request must contain the parameter {name}"));
    let invalid = |what: &str, fix: &str| {
        Refusal::new(
            400,
            "InvalidParameter",
            format!("The specified {what} is not valid. {fix} and retry your request."),
        )
    };
    let endpoint_id = p.param("instanceConnectEndpointId").ok_or_else(|| missing("instanceConnectEndpointId"))?;
    let port = p.param("remotePort").ok_or_else(|| missing("remotePort"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid("RemotePort", "Specify a port from 1 to 65535 as the RemotePort"))?;
    let ip = p.param("privateIpAddress").ok_or_else(|| missing("privateIpAddress"))?;
    let ip: Ipv4Addr =
        ip.parse().map_err(|_| invalid("PrivateIpAddress", "Specify an IPv4 address as the PrivateIpAddress"))?;
    let duration = match p.param("maxTunnelDuration") {
        None => None,
        Some(d) => Some(d.parse::<u64>().ok().filter(|d| (1..=MAX_TUNNEL_DURATION.as_secs()).contains(d)).ok_or_else(
            || invalid("MaxTunnelDuration", "Specify a value from 1 to 3600 seconds as the MaxTunnelDuration"),
        )?),
    };

    let inventory = &state.inventory;
    let endpoint = inventory.endpoint(endpoint_id).ok_or_else(|| {
        Refusal::new(
            404,
            "InvalidInstanceConnectEndpointId.NotFound",
            format!("The instance connect endpoint ID '{endpoint_id}' does not exist"),
        )
    })?;
    let host = header(headers, "host").unwrap_or_default();
    let bare = host.strip_suffix(":443").unwrap_or(host);
    if bare != endpoint.dns_name(&inventory.region) && bare != endpoint.fips_dns_name(&inventory.region) {
        return Err(Refusal::new(
            400,
            "InvalidParameter",
            format!("The Host header '{host}' is not the DNS name of the instance connect endpoint {endpoint_id}."),
        ));
    }
    if !endpoint.usable() {
        return Err(Refusal::new(
            400,
            "IncorrectState",
            format!(
                "The instance connect endpoint {endpoint_id} is in state '{}' and cannot open tunnels.",
                endpoint.state
            ),
        ));
    }
    if let Some(allowed) = endpoint.allowed_ports.as_ref().filter(|a| !a.contains(&port)) {
        let list: Vec<String> = allowed.iter().map(u16::to_string).collect();
        let choice = match &list[..] {
            [one] => one.clone(),
            [a, b] => format!("either {a} or {b}"),
            _ => format!("one of {}", list.join(", ")),
        };
        return Err(invalid("RemotePort", &format!("Specify {choice} as the RemotePort")));
    }
    let instance =
        inventory.instances.iter().find(|i| i.private_ip == Some(ip) && i.vpc_id == endpoint.vpc_id).ok_or_else(
            || {
                invalid(
                    "PrivateIpAddress",
                    &format!("Specify the private IP address of an instance in {}", endpoint.vpc_id),
                )
            },
        )?;
    // What IAM says when the action is denied, or when a condition on
    // ec2-instance-connect:maxTunnelDuration fails: it names the action and resource, never the
    // condition (spec §4.1).
    let action = format!("{SIGNING_NAME}:{LOG_OPERATION}");
    let capped = endpoint.max_tunnel_duration_cap.is_some_and(|cap| duration.is_none_or(|d| d > cap));
    if state.denied(&action) || capped {
        return Err(Refusal::new(
            403,
            "AccessDeniedException",
            format!(
                "User: {} is not authorized to perform: {action} on resource: {} because no identity-based policy allows the {action} action",
                state.caller_arn(&p.access_key_id),
                endpoint.arn(&inventory.region, &inventory.account)
            ),
        ));
    }
    Ok(Admitted {
        endpoint_id: endpoint.id.clone(),
        max_connections: endpoint.max_connections,
        instance_id: instance.id.clone(),
        ip,
        port,
        duration: duration.map_or(MAX_TUNNEL_DURATION, Duration::from_secs),
    })
}

/// Key, scope, signature and validity period, against the lab's credentials and clock.
fn check_signature(state: &State, p: &Presigned, path: &str, headers: &[(String, String)]) -> Result<(), Refusal> {
    let mismatch = |m: String| Refusal::new(403, "SignatureDoesNotMatch", m);
    let invalid =
        || Refusal::new(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
    let secret = match state.caller(&p.access_key_id) {
        Caller::User => crate::SECRET_ACCESS_KEY.to_string(),
        Caller::Role(r) if p.param("X-Amz-Security-Token") == Some(r.session_token.as_str()) => r.secret_access_key,
        Caller::Expired(r) if p.param("X-Amz-Security-Token") == Some(r.session_token.as_str()) => {
            return Err(Refusal::new(
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ));
        }
        _ => return Err(invalid()),
    };
    if p.service != SIGNING_NAME {
        return Err(mismatch(format!("Credential should be scoped to correct service: '{SIGNING_NAME}'. ")));
    }
    if p.region != state.inventory.region {
        return Err(mismatch(format!("Credential should be scoped to a valid region, not '{}'. ", p.region)));
    }
    if p.scope_date != p.amz_date[..8] {
        return Err(mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            p.scope_date,
            &p.amz_date[..8],
            p.amz_date
        )));
    }
    let expected = p.expected_signature("GET", path, headers, &secret).map_err(mismatch)?;
    if expected != p.signature {
        return Err(mismatch(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
        ));
    }
    let now = state.now();
    if p.signed_at + p.expires < now {
        return Err(Refusal::new(
            403,
            "RequestExpired",
            format!(
                "Request has expired: X-Amz-Date {} plus X-Amz-Expires {} s is before the service's time {}",
                p.amz_date,
                p.expires,
                amz_date_from_unix(now)
            ),
        ));
    }
    if p.signed_at > now + MAX_CLOCK_SKEW_SECS {
        return Err(mismatch(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            p.amz_date,
            amz_date_from_unix(now + MAX_CLOCK_SKEW_SECS),
            amz_date_from_unix(now)
        )));
    }
    Ok(())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests;
