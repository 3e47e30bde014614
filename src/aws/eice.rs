//! EC2 Instance Connect Endpoint: finding the endpoint (`DescribeInstanceConnectEndpoints`) and
//! presigning its `openTunnel` websocket URL (`../shared/spec/aws-apis.md` §4.1, §4.4).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::ec2_query::{Params, shapes};
use super::{Aws, AwsError};
use crate::redact::Redacted;

/// The signing name of the tunnel (not `ec2`).
const SIGNING_NAME: &str = "ec2-instance-connect";
/// Presigned URLs live 60 s, as the CLI's (§4.1).
const EXPIRES: Duration = Duration::from_secs(60);
/// The states in which an endpoint accepts tunnels, as the CLI filters them (§4.4).
const USABLE_STATES: [&str; 4] = ["create-complete", "update-in-progress", "update-failed", "update-complete"];
/// RFC 3986 unreserved characters stay; everything else is escaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// An Instance Connect Endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `eice-…`.
    pub id: String,
    /// Host name of its websocket service.
    pub dns_name: String,
    /// The VPC it serves.
    pub vpc_id: Option<String>,
    /// Its subnet.
    pub subnet_id: Option<String>,
    /// Its state.
    pub state: String,
}

/// What the tunnel should reach.
#[derive(Debug, Clone)]
pub(crate) struct TunnelTarget<'a> {
    /// The endpoint.
    pub endpoint: &'a Endpoint,
    /// The instance's private IPv4 address.
    pub private_ip: &'a str,
    /// Its port (ssh's `%p`).
    pub port: u16,
    /// `maxTunnelDuration` in seconds, sent only when given (§4.1).
    pub max_duration: Option<u32>,
}

impl Aws {
    /// Usable endpoints: the one named `id`, or those in `vpc_id`.
    pub(crate) async fn find_endpoints(
        &self,
        id: Option<&str>,
        vpc_id: Option<&str>,
    ) -> Result<Vec<Endpoint>, AwsError> {
        let mut params = Params::new("DescribeInstanceConnectEndpoints").filter("state", &USABLE_STATES);
        if let Some(id) = id {
            params = params.list("InstanceConnectEndpointId", &[id]);
        }
        if let Some(vpc) = vpc_id {
            params = params.filter("vpc-id", &[vpc]);
        }
        let pages: Vec<shapes::DescribeInstanceConnectEndpoints> = self.ec2().pages(&params).await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.instance_connect_endpoint_set.item)
            .map(|e| Endpoint {
                id: e.instance_connect_endpoint_id.unwrap_or_default(),
                dns_name: e.dns_name.unwrap_or_default(),
                vpc_id: e.vpc_id,
                subnet_id: e.subnet_id,
                state: e.state.unwrap_or_default(),
            })
            .collect())
    }

    /// Current credentials from the configured chain (for presigning).
    pub(crate) async fn credentials(&self) -> Result<Credentials, AwsError> {
        let missing =
            |d: String| AwsError::NoCredentials { service: "EC2 Instance Connect", operation: "OpenTunnel", detail: d };
        self.credentials.get().await.map_err(|e| missing(super::chain_text(&e)))
    }
}

/// Why a URL could not be presigned.
#[derive(Debug, thiserror::Error)]
#[error("cannot presign the tunnel URL: {0}")]
pub(crate) struct PresignError(String);

/// The presigned `wss://` URL of a tunnel, parameters in the CLI's order, then the SigV4 query
/// (signature last). Signed over `host` only with the SHA-256 of an empty payload (§4.1). The URL
/// carries the session token and a signature good for 60 s: it is [`Redacted`].
pub(crate) fn presign(
    target: &TunnelTarget<'_>,
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Redacted<String>, PresignError> {
    let mut query = format!(
        "instanceConnectEndpointId={}&remotePort={}&privateIpAddress={}",
        encode(&target.endpoint.id),
        target.port,
        encode(target.private_ip)
    );
    if let Some(d) = target.max_duration {
        query += &format!("&maxTunnelDuration={d}");
    }
    let host = &target.endpoint.dns_name;
    let url = format!("wss://{host}/openTunnel?{query}");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError(e.to_string()))?
        .into();
    // The signer reads the host from the URL's authority; the scheme does not enter the signature.
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| PresignError(e.to_string()))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| PresignError(e.to_string()))?.into_parts();
    let mut signature = None;
    for (name, value) in instructions.params() {
        if *name == "X-Amz-Signature" {
            signature = Some(value.to_string());
        } else {
            query += &format!("&{name}={}", encode(value));
        }
    }
    let signature = signature.ok_or_else(|| PresignError("the signer produced no signature".into()))?;
    Ok(Redacted::new(format!("wss://{host}/openTunnel?{query}&X-Amz-Signature={signature}")))
}

fn encode(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

/// Chooses the endpoint for an instance as the CLI does (§4.4): one in the instance's subnet,
/// else the first in its VPC.
pub(crate) fn choose<'a>(
    endpoints: &'a [Endpoint],
    vpc_id: Option<&str>,
    subnet_id: Option<&str>,
) -> Option<&'a Endpoint> {
    let in_vpc = |e: &&Endpoint| vpc_id.is_none() || e.vpc_id.as_deref() == vpc_id;
    endpoints
        .iter()
        .filter(in_vpc)
        .find(|e| subnet_id.is_some() && e.subnet_id.as_deref() == subnet_id)
        .or_else(|| endpoints.iter().find(in_vpc))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    // aws-apis.md §9: produced with botocore's RequestSigner exactly as the CLI's eicesigner does.
    const VECTOR: &str = "wss://eice-0123456789abcdef0.12345678.ec2-instance-connect-endpoint.us-east-1.amazonaws.com/openTunnel?instanceConnectEndpointId=eice-0123456789abcdef0&remotePort=22&privateIpAddress=10.0.1.23&maxTunnelDuration=3600&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261123%2Fus-east-1%2Fec2-instance-connect%2Faws4_request&X-Amz-Date=20261123T083008Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SESSIONTOKEN&X-Amz-Signature=705e4f94260eeab4a7e0f407182d4e6d24cb7297365317b19bf2e6429a9e798b";

    fn endpoint(id: &str, vpc: &str, subnet: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            dns_name: format!("{id}.12345678.ec2-instance-connect-endpoint.us-east-1.amazonaws.com"),
            vpc_id: Some(vpc.into()),
            subnet_id: Some(subnet.into()),
            state: "create-complete".into(),
        }
    }

    #[test]
    fn presign_reproduces_the_spec_vector() {
        let e = endpoint("eice-0123456789abcdef0", "vpc-1", "subnet-1");
        let target = TunnelTarget { endpoint: &e, private_ip: "10.0.1.23", port: 22, max_duration: Some(3600) };
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("SESSIONTOKEN".into()),
            None,
            "test",
        );
        // 2026-11-23T08:30:08Z
        let now = UNIX_EPOCH + Duration::from_secs(1_795_422_608);
        let url = presign(&target, &creds, "us-east-1", now).unwrap();
        assert_eq!(url.expose(), VECTOR);
        // What a log or message would show of it.
        assert_eq!(
            format!("{url:?}"),
            "wss://eice-0123456789abcdef0.12345678.ec2-instance-connect-endpoint.us-east-1.amazonaws.com/…<redacted>"
        );
    }

    #[test]
    fn endpoint_in_the_same_subnet_wins_then_the_vpc() {
        let all = [
            endpoint("eice-a", "vpc-1", "subnet-2"),
            endpoint("eice-b", "vpc-1", "subnet-1"),
            endpoint("eice-c", "vpc-9", "subnet-9"),
        ];
        assert_eq!(choose(&all, Some("vpc-1"), Some("subnet-1")).unwrap().id, "eice-b");
        assert_eq!(choose(&all, Some("vpc-1"), Some("subnet-7")).unwrap().id, "eice-a");
        assert_eq!(choose(&all, Some("vpc-2"), Some("subnet-1")), None);
    }
}
