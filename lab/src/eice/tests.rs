//! The EICE double end to end inside the lab: DescribeInstanceConnectEndpoints over HTTP, then
//! tunnels through the `wss://` service to a real sshd, with an in-test client (tokio-tungstenite
//! over rustls trusting only the lab CA, URLs signed by `sigv4`). Needs root and OpenSSH, like
//! every test that starts a `Lab`. `iam`: denied tunnels and assumed-role credentials.

mod iam;

use crate::test_world::World;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Ws};

use super::sigv4::{PresignRequest, presign};
use super::{LOG_OPERATION, LOG_SERVICE, PATH, SIGNING_NAME};
use crate::{ApiCall, Inventory, Lab};

/// Every wait in these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(20);
const EICE: &str = "eice-0aa0000000000000a";
const WEB_IP: &str = "127.0.6.10";
const HIDDEN_IP: &str = "127.0.6.11";
const STOPPED_IP: &str = "127.0.6.12";

const INVENTORY: &str = r#"
[[instance]]
id = "i-0aa0000000000000a"
name = "eice-web"
private_ip = "127.0.6.10"

[[instance]]
id = "i-0bb0000000000000b"
name = "eice-hidden"
private_ip = "127.0.6.11"
inbound = false

[[instance]]
id = "i-0cc0000000000000c"
name = "eice-stopped"
state = "stopped"
private_ip = "127.0.6.12"

[[endpoint]]
id = "eice-0aa0000000000000a"

[[endpoint]]
id = "eice-0bb0000000000000b"
subnet_id = "subnet-0bb0000000000000b"
state = "delete-complete"
tags = { Team = "net" }
"#;

type Tunnel = WebSocketStream<TlsStream<TcpStream>>;

fn world() -> World {
    crate::test_world::start("eice", Inventory::from_toml(INVENTORY).unwrap())
}

impl World {
    fn dns_name(&self) -> String {
        self.lab.state().inventory.endpoint(EICE).unwrap().dns_name(&self.lab.state().inventory.region)
    }

    /// A query for a tunnel to `ip:port`, signed now with the lab's credentials.
    fn signed(&self, ip: &str, port: &str) -> String {
        let host = self.dns_name();
        let params = [("instanceConnectEndpointId", EICE), ("remotePort", port), ("privateIpAddress", ip)];
        presign(&PresignRequest {
            host: &host,
            path: PATH,
            params: &params,
            access_key_id: crate::ACCESS_KEY_ID,
            secret: crate::SECRET_ACCESS_KEY,
            session_token: Some("lab-session-token"),
            region: &self.lab.state().inventory.region,
            service: SIGNING_NAME,
            now: self.lab.state().now(),
            expires: 60,
        })
    }

    /// Opens `wss://<dnsName>/openTunnel?<query>`, connecting to the lab's address (what
    /// `EC2_BROKER_EICE_CONNECT_TO` does) and checking TLS for the endpoint's name.
    async fn open(&self, query: &str) -> Result<Tunnel, WsError> {
        let host = self.dns_name();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(self.lab.ca_bundle()).unwrap()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(self.lab.eice_addr()).await.unwrap();
        let name = ServerName::try_from(host.clone()).unwrap();
        let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS for the endpoint's name");
        let url = format!("wss://{host}{PATH}?{query}");
        tokio_tungstenite::client_async(url.as_str(), tls).await.map(|(ws, _)| ws)
    }
}

/// Reads binary frames until `want` appears; returns what came.
async fn read_until(ws: &mut Tunnel, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    while !got.windows(want.len()).any(|w| w == want) {
        match tokio::time::timeout(DEADLINE, ws.next()).await.expect("data in time") {
            Some(Ok(Ws::Binary(b))) => got.extend_from_slice(&b),
            other => panic!("expected binary data, got {other:?} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// The next close frame's code and reason (skipping data).
async fn close_of(ws: &mut Tunnel) -> (u16, String) {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.expect("a close in time") {
            Some(Ok(Ws::Close(Some(f)))) => return (u16::from(f.code), f.reason.to_string()),
            Some(Ok(Ws::Binary(_) | Ws::Ping(_) | Ws::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The refusal's status and JSON body.
fn refusal(result: Result<Tunnel, WsError>) -> (u16, serde_json::Value) {
    match result {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), serde_json::from_slice(&body).expect("a JSON body"))
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the tunnel opened"),
    }
}

#[test]
fn tunnel_reaches_sshd_and_ends_with_1000() {
    let w = world();
    w.rt.block_on(async {
        let mut ws = w.open(&w.signed(WEB_IP, "22")).await.expect("the tunnel opens");
        let banner = read_until(&mut ws, b"\r\n").await;
        assert!(banner.starts_with(b"SSH-2.0-OpenSSH"), "{}", String::from_utf8_lossy(&banner));
        // Garbage instead of a client banner: sshd hangs up, the service closes normally.
        ws.send(Ws::binary(b"not ssh\r\n".to_vec())).await.unwrap();
        assert_eq!(close_of(&mut ws).await, (1000, String::new()));
    });
    let t = &w.lab.eice_tunnels()[0];
    assert!(t.accepted && !t.open, "{t:?}");
    assert_eq!((t.endpoint_id.as_str(), t.private_ip.as_str(), t.port, t.status), (EICE, WEB_IP, Some(22), 101));
    assert_eq!((t.bytes_up, t.close_code), (9, Some(1000)));
    assert!(t.bytes_down >= 8, "{t:?}");
    assert!(w.lab.state().calls().contains(&ApiCall {
        service: LOG_SERVICE.into(),
        operation: LOG_OPERATION.into(),
        status: 101,
        access_key: crate::ACCESS_KEY_ID.into(),
    }));
    assert_eq!(w.lab.connections("i-0aa0000000000000a"), 1);
}

#[test]
fn hidden_instance_is_reachable_and_a_stopped_one_is_not() {
    let w = world();
    w.rt.block_on(async {
        let mut ws = w.open(&w.signed(HIDDEN_IP, "22")).await.expect("the tunnel opens");
        assert!(read_until(&mut ws, b"\r\n").await.starts_with(b"SSH-2.0-"));
        let mut ws = w.open(&w.signed(STOPPED_IP, "22")).await.expect("the upgrade succeeds");
        assert_eq!(close_of(&mut ws).await, (1011, "Unable to connect to target".into()));
    });
    let stopped = &w.lab.eice_tunnels()[1];
    assert_eq!(
        stopped.closed_reason.as_deref(),
        Some("Unable to connect to target (instance i-0cc0000000000000c is stopped)")
    );
}

#[test]
fn refusals_answer_with_a_status_and_a_json_body() {
    let w = world();
    w.rt.block_on(async {
        let tampered = w.signed(WEB_IP, "22").replace("remotePort=22", "remotePort=2222");
        let (status, body) = refusal(w.open(&tampered).await);
        assert_eq!((status, body["ErrorCode"].as_str()), (403, Some("SignatureDoesNotMatch")));
        let query = w.signed(WEB_IP, "22");
        w.lab.state().advance(Duration::from_secs(61));
        let (status, body) = refusal(w.open(&query).await);
        assert_eq!((status, body["ErrorCode"].as_str()), (403, Some("RequestExpired")));
    });
    let tunnels = w.lab.eice_tunnels();
    assert_eq!(tunnels.len(), 2);
    assert!(tunnels.iter().all(|t| !t.accepted && !t.open && t.status == 403 && t.refusal.is_some()), "{tunnels:#?}");
    assert_eq!(tunnels[1].refusal.as_deref().map(|r| r.starts_with("Request has expired")), Some(true));
}

#[test]
fn fault_knobs() {
    let w = world();
    w.rt.block_on(async {
        // The duration cap ends the tunnel with a reason naming it.
        w.lab.state().set_eice_faults(|f| f.tunnel_cap = Some(Duration::from_millis(300)));
        let mut ws = w.open(&w.signed(WEB_IP, "22")).await.unwrap();
        assert_eq!(close_of(&mut ws).await, (1001, "Maximum tunnel duration (300 ms) reached".into()));

        // A text frame first, then the data as usual.
        w.lab.state().set_eice_faults(|f| {
            f.tunnel_cap = None;
            f.send_text_frame = true;
        });
        let mut ws = w.open(&w.signed(WEB_IP, "22")).await.unwrap();
        assert!(matches!(ws.next().await, Some(Ok(Ws::Text(_)))));
        assert!(read_until(&mut ws, b"\r\n").await.starts_with(b"SSH-2.0-"));

        // One connection at a time: the second one is refused with 429 while the first is open.
        w.lab.state().set_eice_faults(|f| {
            f.send_text_frame = false;
            f.max_connections = Some(1);
        });
        let (status, body) = refusal(w.open(&w.signed(WEB_IP, "22")).await);
        assert_eq!((status, body["ErrorCode"].as_str()), (429, Some("ThrottlingException")));
        drop(ws);

        // A text frame from the client is a protocol error.
        w.lab.state().set_eice_faults(|f| f.max_connections = None);
        let mut ws = w.open(&w.signed(WEB_IP, "22")).await.unwrap();
        ws.send(Ws::text("hello")).await.unwrap();
        assert_eq!(close_of(&mut ws).await.0, 1003);

        // Close right after the upgrade with a chosen code.
        w.lab.state().set_eice_faults(|f| f.close_code = Some((4000, "lab says no".into())));
        let mut ws = w.open(&w.signed(WEB_IP, "22")).await.unwrap();
        assert_eq!(close_of(&mut ws).await, (4000, "lab says no".into()));
    });
    let statuses: Vec<u16> = w.lab.eice_tunnels().iter().map(|t| t.status).collect();
    assert_eq!(statuses, [101, 101, 429, 101, 101]);
}

#[test]
fn describe_instance_connect_endpoints_xml() {
    let w = world();
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstanceConnectEndpoints&Version=2016-11-15");
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<DescribeInstanceConnectEndpointsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">")
    );
    let dns = w.dns_name();
    for part in [
        format!("<instanceConnectEndpointId>{EICE}</instanceConnectEndpointId>"),
        format!(
            "<instanceConnectEndpointArn>arn:aws:ec2:eu-west-1:123456789012:instance-connect-endpoint/{EICE}</instanceConnectEndpointArn>"
        ),
        "<state>create-complete</state>".into(),
        format!("<dnsName>{dns}</dnsName>"),
        format!(
            "<fipsDnsName>{}</fipsDnsName>",
            dns.replace(".ec2-instance-connect-endpoint.", ".fips.ec2-instance-connect-endpoint.")
        ),
        "<vpcId>vpc-0123456789abcdef0</vpcId><availabilityZone>eu-west-1a</availabilityZone>".into(),
        "<ipAddressType>ipv4</ipAddressType>".into(),
        "<tagSet><item><key>Team</key><value>net</value></item></tagSet>".into(),
    ] {
        assert!(xml.contains(&part), "{part} not in {xml}");
    }
    assert!(
        dns.starts_with(&format!("{EICE}.")) && dns.ends_with(".ec2-instance-connect-endpoint.eu-west-1.amazonaws.com")
    );
    assert_eq!(dns.split('.').nth(1).map(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_hexdigit())), Some(true));

    // The CLI's filters: usable states and the instance's VPC.
    let (_, xml) = ec2(
        &w.lab,
        "Action=DescribeInstanceConnectEndpoints&Filter.1.Name=state&Filter.1.Value.1=create-complete&Filter.1.Value.2=update-complete\
         &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-0123456789abcdef0",
    );
    assert_eq!(xml.matches("<instanceConnectEndpointId>").count(), 1, "{xml}");
    let (_, xml) = ec2(&w.lab, "Action=DescribeInstanceConnectEndpoints&MaxResults=1");
    assert!(xml.contains("<nextToken>1</nextToken>"), "{xml}");
    let (_, xml) = ec2(&w.lab, "Action=DescribeInstanceConnectEndpoints&MaxResults=1&NextToken=1");
    assert!(xml.contains("eice-0bb0000000000000b") && !xml.contains("<nextToken>"), "{xml}");

    let (status, xml) =
        ec2(&w.lab, "Action=DescribeInstanceConnectEndpoints&InstanceConnectEndpointId.1=eice-0ff0000000000000f");
    assert_eq!(status, 400);
    assert!(xml.contains("<Response><Errors><Error><Code>InvalidInstanceConnectEndpointId.NotFound</Code>"), "{xml}");
    let (status, xml) =
        ec2(&w.lab, "Action=DescribeInstanceConnectEndpoints&Filter.1.Name=owner-id&Filter.1.Value.1=1");
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidParameterValue</Code>"), "{xml}");
}

/// POSTs an EC2 query form to the lab's API; returns the status and the body.
fn ec2(lab: &Lab, form: &str) -> (u16, String) {
    crate::test_world::post(lab, "Content-Type: application/x-www-form-urlencoded\r\n", form)
}

#[test]
fn other_ports_dial_the_address_and_frames_are_limited_to_64_kib() {
    let w = world();
    w.rt.block_on(async {
        // A service of the instance's own on another port: it echoes what it reads.
        let service = tokio::net::TcpListener::bind((WEB_IP, 0)).await.unwrap();
        let port = service.local_addr().unwrap().port().to_string();
        tokio::spawn(async move {
            let (mut tcp, _) = service.accept().await.unwrap();
            let (mut r, mut w) = tcp.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let mut ws = w.open(&w.signed(WEB_IP, &port)).await.expect("the tunnel opens");
        let full = vec![7u8; super::MAX_FRAME];
        ws.send(Ws::binary(full.clone())).await.unwrap();
        let mut echoed = 0;
        while echoed < full.len() {
            match tokio::time::timeout(DEADLINE, ws.next()).await.expect("the echo in time") {
                Some(Ok(Ws::Binary(b))) => echoed += b.len(),
                other => panic!("expected the echo, got {other:?}"),
            }
        }
        ws.send(Ws::binary(vec![7u8; super::MAX_FRAME + 1])).await.unwrap();
        assert_eq!(close_of(&mut ws).await, (1009, "Frame too large: at most 65536 bytes".into()));
    });
    let t = &w.lab.eice_tunnels()[0];
    assert_eq!((t.bytes_up, t.bytes_down, t.close_code), (65_536, 65_536, Some(1009)), "{t:?}");
}
