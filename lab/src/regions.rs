//! Several Regions behind one API endpoint, for listings across Regions (`ec2-broker ls
//! --regions`, `ec2-lab bench-ls`): a [`Lab`] per Region, and a front that hands each API request
//! to the lab of the Region its SigV4 credential scope names (as AWS's regional endpoints
//! answer only for their own Region), and answers `DescribeRegions` with the Regions it holds.
//! A Region with no lab is answered as a Region the account has not enabled: `AuthFailure`.
//!
//! [`generated`] makes a large inventory spread over three Regions, each with its own mix of
//! what decides the routes (Instance Connect Endpoints, SSM agents, serial console access).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, ensure};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::net::TcpListener;

use crate::inventory::{DEFAULT_VPC_ID, EndpointSpec};
use crate::ssm::SsmStatus;
use crate::state::{ApiCall, State};
use crate::{Inventory, Lab};

/// The Regions [`generated`] spreads instances over, in order.
pub const GENERATED_REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
/// The VPC of the generated instances that no Instance Connect Endpoint serves (one in five
/// instances of us-east-1).
pub const VPC_WITHOUT_ENDPOINT: &str = "vpc-0e0000000000000b2";

/// Labs for several Regions behind one API endpoint. Dropping it stops everything.
pub struct Regions {
    // Dropped first: the front, then the labs.
    runtime: Option<tokio::runtime::Runtime>,
    labs: Vec<Lab>,
    api: SocketAddr,
}

impl Regions {
    /// Starts a lab per inventory (each in `dir/<region>`) and the front. The inventories'
    /// Regions must differ.
    pub fn start(inventories: Vec<Inventory>, dir: &Path) -> anyhow::Result<Regions> {
        let mut names: Vec<&str> = inventories.iter().map(|i| i.region.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        ensure!(names.len() == inventories.len(), "two inventories for one Region");
        let labs = (inventories.into_iter())
            .map(|inv| {
                let sub = dir.join(&inv.region);
                Lab::start(inv, &sub)
            })
            .collect::<anyhow::Result<Vec<Lab>>>()?;
        let front = Arc::new(Front {
            states: labs.iter().map(|l| (l.state.inventory.region.clone(), l.state.clone())).collect(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("ec2-lab-regions")
            .build()?;
        let api = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the Regions' API endpoint")?;
            let api = listener.local_addr()?;
            tokio::spawn(super::serve(listener, axum::Router::new().route("/", any(answer)).with_state(front)));
            anyhow::Ok(api)
        })?;
        Ok(Regions { runtime: Some(runtime), labs, api })
    }

    /// The one API endpoint (`AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// Every Region's lab, in the order started.
    pub fn labs(&self) -> &[Lab] {
        &self.labs
    }

    /// The lab of `region`.
    pub fn lab(&self, region: &str) -> Option<&Lab> {
        self.labs.iter().find(|l| l.state.inventory.region == region)
    }

    /// The first lab's [`Lab::env`] with the front as `AWS_ENDPOINT_URL` and
    /// `AWS_ENDPOINT_URL_EC2` (plain HTTP: the front has no TLS; `AWS_REGION` is the first lab's
    /// Region).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.labs.first().map(Lab::env).unwrap_or_default();
        for (k, v) in &mut env {
            if k == "AWS_ENDPOINT_URL" || k == "AWS_ENDPOINT_URL_EC2" {
                *v = self.endpoint_url();
            }
        }
        env
    }

    /// Every API call so far with its Region, Region by Region.
    pub fn calls(&self) -> Vec<(String, ApiCall)> {
        (self.labs.iter())
            .flat_map(|l| l.state.calls().into_iter().map(|c| (l.state.inventory.region.clone(), c)))
            .collect()
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct Front {
    states: BTreeMap<String, Arc<State>>,
}

async fn answer(
    axum::extract::State(front): axum::extract::State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let json = headers.contains_key("x-amz-target");
    let Some(state) = authorization.as_deref().and_then(scope_region).and_then(|r| front.states.get(&r)) else {
        return not_enabled(json);
    };
    let action = form_urlencoded::parse(&body).find(|(k, _)| k == "Action").map(|(_, v)| v.into_owned());
    if !json && action.as_deref() == Some("DescribeRegions") {
        let latency = state.faults().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (access_key, _) = crate::identity::credential(authorization.as_deref().unwrap_or_default());
        state.record("ec2", "DescribeRegions", 200, &access_key);
        return describe_regions(state, front.states.keys());
    }
    crate::api::dispatch(axum::extract::State(state.clone()), method, uri, headers, body).await
}

/// The Region of `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
fn scope_region(authorization: &str) -> Option<String> {
    let (_, rest) = authorization.split_once("Credential=")?;
    rest.split([',', ' ']).next()?.split('/').nth(2).map(str::to_string)
}

fn describe_regions<'a>(state: &State, regions: impl Iterator<Item = &'a String>) -> Response {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>{}</requestId><regionInfo>",
        state.next_id("")
    );
    for r in regions {
        let _ = write!(
            xml,
            "<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>"
        );
    }
    xml.push_str("</regionInfo></DescribeRegionsResponse>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], xml).into_response()
}

/// What a Region the account has not enabled answers (EC2's query protocol, or awsJson).
fn not_enabled(json: bool) -> Response {
    if json {
        let body = r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body).into_response();
    }
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>lab-401</RequestID></Response>";
    (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

/// `total` generated instances (`Inventory::generated`, no sshd) spread evenly over
/// [`GENERATED_REGIONS`], each Region with its own mix:
/// - eu-west-1: an Instance Connect Endpoint in the instances' VPC; agents as generated
///   (online on Linux);
/// - us-east-1: one instance in five in [`VPC_WITHOUT_ENDPOINT`], the endpoint of the other VPC
///   still being created (not usable); agents of one running instance in ten each
///   `connection_lost`, `inactive` and unregistered;
/// - ap-southeast-2: serial console access off; no endpoint.
///
/// Instance ids differ between Regions (each Region has its own seed); Names repeat
/// (`gen-web-0` in each Region).
pub fn generated(total: usize, seed: u64) -> Vec<Inventory> {
    let per = total / GENERATED_REGIONS.len();
    GENERATED_REGIONS
        .iter()
        .enumerate()
        .map(|(n, region)| {
            let count = if n + 1 == GENERATED_REGIONS.len() { total - per * n } else { per };
            let mut inv = Inventory::generated(count, seed.wrapping_add(n as u64));
            inv.region = region.to_string();
            for i in &mut inv.instances {
                let zone = i.az.chars().last().unwrap_or('a');
                i.az = format!("{region}{zone}");
            }
            match n {
                0 => inv.endpoints.push(endpoint("eice-0e0000000000000a1", DEFAULT_VPC_ID, "create-complete", region)),
                1 => {
                    inv.endpoints.push(endpoint(
                        "eice-0e0000000000000b1",
                        DEFAULT_VPC_ID,
                        "create-in-progress",
                        region,
                    ));
                    for (k, i) in inv.instances.iter_mut().enumerate() {
                        if k % 5 == 4 {
                            i.vpc_id = VPC_WITHOUT_ENDPOINT.into();
                            i.subnet_id = "subnet-0e0000000000000b2".into();
                        }
                        if i.state == "running" && i.platform.is_none() {
                            i.ssm = match k % 10 {
                                0 => Some(SsmStatus::ConnectionLost),
                                1 => Some(SsmStatus::Inactive),
                                2 => Some(SsmStatus::None),
                                _ => None,
                            };
                        }
                    }
                }
                _ => inv.serial_console_access = false,
            }
            inv
        })
        .collect()
}

fn endpoint(id: &str, vpc: &str, state: &str, region: &str) -> EndpointSpec {
    EndpointSpec {
        id: id.into(),
        vpc_id: vpc.into(),
        subnet_id: "subnet-0123456789abcdef0".into(),
        az: format!("{region}a"),
        state: state.into(),
        max_tunnel_duration_cap: None,
        max_connections: 20,
        allowed_ports: None,
        preserve_client_ip: false,
        tags: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scope_names_the_region() {
        let h =
            "AWS4-HMAC-SHA256 Credential=AKIALAB/20261123/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(scope_region(h).as_deref(), Some("us-east-1"));
        assert_eq!(scope_region("AWS4-HMAC-SHA256 Credential=AKIALAB"), None);
    }

    #[test]
    fn generated_regions_split_the_total_and_check() {
        let invs = generated(1000, 7);
        assert_eq!(invs.iter().map(|i| i.instances.len()).sum::<usize>(), 1000);
        assert_eq!(invs.iter().map(|i| i.region.as_str()).collect::<Vec<_>>(), GENERATED_REGIONS);
        for inv in &invs {
            inv.check().unwrap();
            assert!(inv.instances.iter().all(|i| i.az.starts_with(&inv.region)));
        }
        let ids: std::collections::HashSet<&str> =
            invs.iter().flat_map(|i| i.instances.iter().map(|i| i.id.as_str())).collect();
        assert_eq!(ids.len(), 1000, "ids differ between Regions");
    }
}
