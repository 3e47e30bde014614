//! The SSM double end to end inside the lab: the API over HTTP, the websocket service, the agent
//! and a real sshd, driven by the in-test client of `client` (the lab codec, never the broker's).
//! Needs root and OpenSSH, like every test that starts a `Lab`.

mod client;
mod shell;

use crate::test_world::World;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use self::client::{Client, Event, call, connect, start};
use super::frame::payload_type::OUTPUT;
use super::{Disconnect, DisconnectKind, SsmStatus};
use crate::{ApiCall, Inventory};

const WEB: &str = "i-0aa0000000000000a";
const DB: &str = "i-0bb0000000000000b";
const OFF: &str = "i-0cc0000000000000c";
const STOPPED: &str = "i-0dd0000000000000d";

const INVENTORY: &str = r#"
[[instance]]
id = "i-0aa0000000000000a"
name = "ssm-web"
private_ip = "127.0.4.10"

[[instance]]
id = "i-0bb0000000000000b"
name = "ssm-db"
private_ip = "127.0.4.11"
inbound = false

[[instance]]
id = "i-0cc0000000000000c"
name = "ssm-off"
private_ip = "127.0.4.12"
ssm = "connection_lost"

[[instance]]
id = "i-0dd0000000000000d"
name = "ssm-stopped"
state = "stopped"
private_ip = "127.0.4.13"
"#;

fn world(tls: bool) -> World {
    let mut inventory = Inventory::from_toml(INVENTORY).unwrap();
    inventory.ssm_tls = tls;
    crate::test_world::start("ssm", inventory)
}

fn error_type(body: &Value) -> &str {
    body["__type"].as_str().unwrap_or_default()
}

#[test]
fn ssh_reaches_sshd_of_instance_without_inbound_network() {
    let w = world(false);
    let port = w.lab.ssh_port(DB);
    assert!(std::net::TcpStream::connect(("127.0.4.11", port)).is_err(), "no direct route to db");
    let (sid, url, token) = start(&w.lab, DB);
    assert!(sid.starts_with("labuser-") && sid.len() == 25, "{sid}");
    assert_eq!(url, format!("{}/v1/data-channel/{sid}?role=publish_subscribe", w.lab.ssm_url()));
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let request = c.stream().await;
        assert_eq!((request.sequence_number, request.flags, request.payload_type), (0, 1, 5));
        let request: Value = serde_json::from_slice(&request.payload).unwrap();
        assert_eq!(
            request,
            json!({"AgentVersion": "3.3.1142.0", "RequestedClientActions": [{"ActionType": "SessionType",
                "ActionParameters": {"SessionType": "Port", "Properties": {"portNumber": "22"}}}]})
        );
        // Data before HandshakeComplete is acked and discarded: sshd would hang up on it.
        let early = c.send(OUTPUT, b"not an ssh identification\r\n").await;
        c.respond(1).await;
        let complete = c.stream().await;
        assert_eq!(complete.payload_type, 7);
        let complete: Value = serde_json::from_slice(&complete.payload).unwrap();
        assert!(complete["HandshakeTimeToComplete"].is_u64() && complete["CustomerMessage"] == "", "{complete}");
        let banner = c.output_until(b"\r\n").await;
        assert!(banner.starts_with(b"SSH-2.0-OpenSSH"), "{}", String::from_utf8_lossy(&banner));
        c.send(OUTPUT, b"SSH-2.0-lab-test\r\n").await;
        c.output_until(b"curve25519").await; // sshd's KEXINIT: our identification reached it.
        assert!(c.acked.contains(&early), "early data is acked");

        let (status, body) = call(&w.lab, "TerminateSession", json!({"SessionId": sid}));
        assert_eq!((status, body), (200, json!({"SessionId": sid})));
        let (m, raw) = loop {
            match c.next().await {
                Event::Stream(_) => continue, // The rest of sshd's KEXINIT.
                Event::ChannelClosed(m, raw) => break (m, raw),
                other => panic!("expected channel_closed, got {other:?}"),
            }
        };
        assert_eq!(&raw[..4], &116u32.to_be_bytes());
        assert_eq!(&raw[4..36], format!("{:<32}", "channel_closed").as_bytes());
        let payload: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            (payload["SessionId"].as_str(), payload["MessageType"].as_str()),
            (Some(&*sid), Some("channel_closed"))
        );
        assert!(matches!(c.next().await, Event::Closed(_) | Event::Gone));
    });
    let info = &w.lab.ssm_sessions()[0];
    assert!(info.ended && info.terminated_by_api && info.handshake_done, "{info:?}");
    assert_eq!((info.client_connects, info.client_version.as_deref()), (1, Some("1.2.677.0")));
    assert!(info.bytes_from_client > 0 && info.bytes_to_client > 0, "{info:?}");
    assert_eq!(w.lab.connections(DB), 1);
    let (status, body) = call(&w.lab, "ResumeSession", json!({"SessionId": sid}));
    assert_eq!((status, error_type(&body)), (400, "DoesNotExistException"));
}

#[test]
fn sshd_closing_ends_the_session_with_channel_closed() {
    let w = world(false);
    for short in [false, true] {
        w.lab.state().set_ssm_faults(|f| f.channel_closed_hl112 = short);
        let (sid, url, token) = start(&w.lab, WEB);
        w.rt.block_on(async {
            let mut c = connect(&url).await.unwrap();
            c.open(&token).await;
            c.handshake().await;
            c.output_until(b"\r\n").await;
            c.send(OUTPUT, b"garbage\r\n").await;
            let raw = loop {
                match c.next().await {
                    Event::Stream(_) => continue, // sshd's complaint, if any.
                    Event::ChannelClosed(_, raw) => break raw,
                    other => panic!("expected channel_closed, got {other:?}"),
                }
            };
            let (hl, pad) = if short { (112u32, 0u8) } else { (116, b' ') };
            assert_eq!((&raw[..4], raw[4 + "channel_closed".len()]), (&hl.to_be_bytes()[..], pad));
            let payload: Value = serde_json::from_slice(&raw[hl as usize + 4..]).unwrap();
            assert_eq!((payload["SessionId"].as_str(), payload["Output"].as_str()), (Some(&*sid), Some("")));
            assert!(matches!(c.next().await, Event::Closed(_) | Event::Gone));
        });
        let info = w.lab.ssm_sessions().into_iter().find(|s| s.id == sid).unwrap();
        assert_eq!(info.end_reason.as_deref(), Some("sshd closed the connection"), "{info:?}");
        assert!(!info.terminated_by_api);
        w.lab.state().set_ssm_faults(|f| f.resume_ended_empty_token = short);
        let (status, body) = call(&w.lab, "ResumeSession", json!({"SessionId": sid}));
        if short {
            assert_eq!((status, &body["TokenValue"]), (200, &json!("")), "{body}");
        } else {
            assert_eq!((status, error_type(&body)), (400, "DoesNotExistException"), "{body}");
        }
    }
}

#[test]
fn client_reconnects_after_bye_and_drop() {
    let w = world(false);
    w.lab.state().set_ssm_faults(|f| {
        f.disconnects.push_back(Disconnect::after_bytes(1, DisconnectKind::Bye));
        f.disconnects.push_back(Disconnect::after_bytes(1, DisconnectKind::Drop));
    });
    let (sid, url, token) = start(&w.lab, DB);
    let resume = || {
        let (status, body) = call(&w.lab, "ResumeSession", json!({"SessionId": sid}));
        assert_eq!((status, body["StreamUrl"].as_str()), (200, Some(url.as_str())), "{body}");
        body["TokenValue"].as_str().unwrap().to_string()
    };
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        assert_eq!(c.stream().await.payload_type, 5);
        match c.next().await {
            Event::Closed(Some(f)) => assert_eq!((f.code, f.reason.as_str()), (CloseCode::Normal, "Bye")),
            other => panic!("expected a Bye close, got {other:?}"),
        }
        // Second connection: the agent resends its unacked request (a duplicate to us), then RST.
        let mut c = c.resume_on(connect(&url).await.unwrap());
        c.open(&resume()).await;
        assert!(matches!(c.next().await, Event::Gone));
        let mut c = c.resume_on(connect(&url).await.unwrap());
        c.open(&resume()).await;
        c.respond(1).await;
        assert_eq!(c.stream().await.payload_type, 7);
        let banner = c.output_until(b"\r\n").await;
        assert!(banner.starts_with(b"SSH-2.0-"));
    });
    let info = &w.lab.ssm_sessions()[0];
    assert_eq!(info.client_connects, 3, "{info:?}");
    assert!(info.retransmits >= 1 && !info.ended, "{info:?}");
}

#[test]
fn open_frame_token_must_be_valid_unused_and_fresh() {
    let w = world(false);
    let (sid, url, token) = start(&w.lab, WEB);
    let refused = |reason: &'static str| {
        move |e: Event| match e {
            Event::Closed(Some(f)) => assert_eq!((f.code, f.reason.as_str()), (CloseCode::Policy, reason)),
            other => panic!("expected a policy close ({reason}), got {other:?}"),
        }
    };
    w.rt.block_on(async {
        let mut bad = connect(&url).await.unwrap();
        bad.open("not-a-token").await;
        refused("unknown token")(bad.next().await);
        let mut good = connect(&url).await.unwrap();
        good.open(&token).await;
        assert_eq!(good.stream().await.payload_type, 5);
        let mut again = connect(&url).await.unwrap();
        again.open(&token).await;
        refused("token already used")(again.next().await);
        let (_, body) = call(&w.lab, "ResumeSession", json!({"SessionId": sid}));
        w.lab.state().advance(Duration::from_secs(61));
        let mut late = connect(&url).await.unwrap();
        late.open(body["TokenValue"].as_str().unwrap()).await;
        refused("token expired")(late.next().await);
        assert!(connect(&format!("{}/v2/elsewhere", w.lab.ssm_url())).await.is_err(), "unknown path");
    });
    let opens: Vec<u16> =
        w.lab.state().calls().into_iter().filter(|c| c.service == "ssmmessages").map(|c| c.status).collect();
    assert_eq!(opens, [403, 200, 403, 403]);
}

#[test]
fn api_reports_agent_status_and_errors() {
    let w = world(false);
    let start_on =
        |target: &str| call(&w.lab, "StartSession", json!({"Target": target, "DocumentName": "AWS-StartSSHSession"}));
    for target in [OFF, STOPPED, "i-0123456789abcdef0"] {
        let (status, body) = start_on(target);
        assert_eq!((status, error_type(&body)), (400, "TargetNotConnected"), "{target}");
        assert_eq!(body["Message"], format!("{target} is not connected."));
    }
    w.lab.state().set_ssm_status(WEB, SsmStatus::ConnectionLost);
    assert_eq!(error_type(&start_on(WEB).1), "TargetNotConnected");
    w.lab.state().set_ssm_status(WEB, SsmStatus::Online);
    assert_eq!(start_on(WEB).0, 200);
    let (status, body) = call(&w.lab, "StartSession", json!({"Target": WEB, "DocumentName": "AWS-RunShellScript"}));
    assert_eq!((status, error_type(&body)), (400, "InvalidDocument"));
    let (status, body) = call(
        &w.lab,
        "StartSession",
        json!({"Target": WEB, "DocumentName": "AWS-StartPortForwardingSession", "Parameters": {"portNumber": ["x"]}}),
    );
    assert_eq!((status, error_type(&body)), (400, "InvalidParameters"));

    let (status, body) = call(&w.lab, "DescribeInstanceInformation", json!({"MaxResults": 1}));
    assert_eq!((status, error_type(&body)), (400, "ValidationException"));
    let (status, body) = call(
        &w.lab,
        "DescribeInstanceInformation",
        json!({"Filters": [{"Key": "InstanceIds", "Values": [WEB, DB, OFF, STOPPED]}], "MaxResults": 5}),
    );
    assert_eq!(status, 200, "{body}");
    let list = body["InstanceInformationList"].as_array().unwrap();
    let seen: Vec<(&str, &str)> =
        list.iter().map(|i| (i["InstanceId"].as_str().unwrap(), i["PingStatus"].as_str().unwrap())).collect();
    assert_eq!(seen, [(WEB, "Online"), (DB, "Online"), (OFF, "ConnectionLost")]);
    assert_eq!(
        (&list[1]["IPAddress"], &list[1]["PlatformType"], &list[1]["ResourceType"], &list[1]["AgentVersion"]),
        (&json!("127.0.4.11"), &json!("Linux"), &json!("EC2Instance"), &json!("3.3.1142.0"))
    );
    assert!(list[2]["LastPingDateTime"].as_u64().unwrap() < list[0]["LastPingDateTime"].as_u64().unwrap());

    w.lab.state().set_faults(|f| f.throttle_next = 1);
    let (status, body) = start_on(WEB);
    assert_eq!((status, error_type(&body)), (429, "ThrottlingException"));
    let calls = w.lab.state().calls();
    let call = |status| ApiCall {
        service: "ssm".into(),
        operation: "StartSession".into(),
        status,
        access_key: crate::ACCESS_KEY_ID.into(),
    };
    assert!(calls.contains(&call(400)) && calls.contains(&call(429)), "{calls:?}");
}

#[test]
fn agent_retransmits_dropped_and_corrupted_frames_and_reacks_duplicates() {
    let w = world(false);
    w.lab.state().set_ssm_faults(|f| {
        f.drop_frames = 1;
        f.corrupt_digest = 1;
        f.duplicate_acks = 1;
    });
    let (_, url, token) = start(&w.lab, WEB);
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        assert_eq!(c.stream().await.payload_type, 5); // The third send: dropped, corrupted, good.
        assert_eq!(c.bad_digests, 1);
        c.respond(1).await;
        c.resend_last().await; // A duplicate: the agent acks it again.
        assert_eq!(c.stream().await.payload_type, 7);
        c.output_until(b"\r\n").await;
        c.send(OUTPUT, b"SSH-2.0-lab-test\r\n").await;
        c.output_until(b"curve25519").await; // A round trip to sshd: the re-ack came long before.
        assert_eq!(c.acks.iter().filter(|s| **s == 0).count(), 3, "ack, its duplicate, re-ack: {:?}", c.acks);
    });
    assert!(w.lab.ssm_sessions()[0].retransmits >= 2);
}

#[test]
fn delayed_duplicated_and_unacked_frames_then_a_timed_drop() {
    let w = world(false);
    w.lab.state().set_ssm_faults(|f| {
        f.delay = Duration::from_millis(50);
        f.duplicate_frames = 1;
        f.drop_acks = 1;
        f.pacing = false;
        f.disconnects.push_back(Disconnect::after_time(Duration::from_secs(2), DisconnectKind::Drop));
    });
    let (_, url, token) = start(&w.lab, WEB);
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        let started = std::time::Instant::now();
        c.handshake().await; // The request came twice; the client drops the copy.
        // Request, response and complete each took the 50 ms delay.
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
        assert!(c.output_until(b"\r\n").await.starts_with(b"SSH-2.0-"));
        assert!(c.acks.is_empty(), "the only ack (of the response) was dropped: {:?}", c.acks);
        assert!(matches!(c.next().await, Event::Gone), "dropped after 2 s");
    });
    let info = &w.lab.ssm_sessions()[0];
    assert!(!info.ended && info.client_connects == 1, "{info:?}");
}

#[test]
fn failed_handshake_ends_the_session() {
    let w = world(false);
    let (_, url, token) = start(&w.lab, WEB);
    w.rt.block_on(async {
        let mut c = connect(&url).await.unwrap();
        c.open(&token).await;
        assert_eq!(c.stream().await.payload_type, 5);
        c.respond(2).await;
        // `PerformHandshake`'s error, as sessionplugin.go wraps it, is the channel_closed text.
        let Event::ChannelClosed(m, _) = c.next().await else { panic!("expected channel_closed") };
        let payload: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(payload["Output"], FAILED);
    });
    const FAILED: &str =
        "Encountered error while initiating handshake. SessionType failed on client with status 2 error: ";
    let info = &w.lab.ssm_sessions()[0];
    assert_eq!(info.end_reason.as_deref(), Some(FAILED), "{info:?}");
    assert_eq!(w.lab.connections(WEB), 0, "no dial after a failed handshake");
}

#[test]
fn wss_with_the_lab_ca() {
    let w = world(true);
    let ca = w.lab.ca_bundle().to_path_buf();
    assert!(w.lab.env().contains(&("AWS_CA_BUNDLE".into(), ca.display().to_string())));
    assert!(w.lab.ssm_url().starts_with("wss://127.0.0.1:"));
    let (_, url, token) = start(&w.lab, WEB);
    assert!(url.starts_with("wss://"));
    w.rt.block_on(async {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&ca).unwrap()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let addr = url.trim_start_matches("wss://").split('/').next().unwrap().to_string();
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS with the lab CA");
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tls).await.unwrap();
        let mut c = Client::new(ws);
        c.open(&token).await;
        c.handshake().await;
        assert!(c.output_until(b"\r\n").await.starts_with(b"SSH-2.0-"));
    });
}
