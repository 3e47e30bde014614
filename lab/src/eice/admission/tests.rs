//! `admission` against a `State` with no sockets: the lab signer, the lab clock, every refusal.

use super::*;
use crate::eice::sigv4::{PresignRequest, presign};
use crate::inventory::Inventory;

/// Host, parameters, then the status, `ErrorCode` and a piece of the message expected.
type Case<'a> = (String, Vec<(String, String)>, u16, &'a str, &'a str);

const INVENTORY: &str = r#"
region = "eu-west-1"

[[instance]]
id = "i-0aa0000000000000a"
private_ip = "127.0.5.10"

[[instance]]
id = "i-0bb0000000000000b"
private_ip = "127.0.5.11"
vpc_id = "vpc-0other000000000b"

[[endpoint]]
id = "eice-0aa0000000000000a"
allowed_ports = [22, 3389]

[[endpoint]]
id = "eice-0cc0000000000000c"
max_tunnel_duration_cap = 600

[[endpoint]]
id = "eice-0dd0000000000000d"
state = "create-in-progress"
"#;

fn state() -> State {
    State::new(Inventory::from_toml(INVENTORY).unwrap())
}

fn host(state: &State, id: &str) -> String {
    state.inventory.endpoint(id).unwrap().dns_name("eu-west-1")
}

/// A query signed by the lab's own signer with the lab's credentials, now.
fn signed(state: &State, host: &str, params: &[(&str, &str)], secret: &str, region: &str) -> String {
    presign(&PresignRequest {
        host,
        path: PATH,
        params,
        access_key_id: crate::ACCESS_KEY_ID,
        secret,
        session_token: None,
        region,
        service: SIGNING_NAME,
        now: state.now(),
        expires: 60,
    })
}

fn tunnel(id: &str, ip: &str, port: &str) -> Vec<(String, String)> {
    vec![
        ("instanceConnectEndpointId".into(), id.into()),
        ("remotePort".into(), port.into()),
        ("privateIpAddress".into(), ip.into()),
    ]
}

fn check(state: &State, host: &str, query: &str) -> Result<Admitted, Refusal> {
    let headers = [("Host".to_string(), host.to_string()), ("User-Agent".into(), "test".into())];
    admit(state, PATH, query, &headers, &mut EiceTunnelInfo::default())
}

fn refusal(state: &State, host: &str, params: &[(String, String)]) -> (u16, &'static str, String) {
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let query = signed(state, host, &params, crate::SECRET_ACCESS_KEY, "eu-west-1");
    let r = check(state, host, &query).expect_err("refused");
    (r.status, r.code, r.message)
}

#[test]
fn a_signed_request_is_admitted_and_tampering_is_not() {
    let s = state();
    let h = host(&s, "eice-0aa0000000000000a");
    let params = [
        ("instanceConnectEndpointId", "eice-0aa0000000000000a"),
        ("remotePort", "22"),
        ("privateIpAddress", "127.0.5.10"),
    ];
    // Signed within one second of the lab clock, so the expiry checks below know its X-Amz-Date.
    let (signed_at, query) = loop {
        let t = s.now();
        let q = signed(&s, &h, &params, crate::SECRET_ACCESS_KEY, "eu-west-1");
        if s.now() == t {
            break (t, q);
        }
    };
    let a = check(&s, &h, &query).expect("admitted");
    assert_eq!((a.instance_id.as_str(), a.port, a.duration), ("i-0aa0000000000000a", 22, MAX_TUNNEL_DURATION));
    // `:443` in Host is the same endpoint, but it was not what was signed.
    let r = check(&s, &format!("{h}:443"), &query).unwrap_err();
    assert_eq!((r.status, r.code), (403, "SignatureDoesNotMatch"));

    let tampered = query.replace("remotePort=22", "remotePort=23");
    let r = check(&s, &h, &tampered).unwrap_err();
    assert_eq!((r.status, r.code), (403, "SignatureDoesNotMatch"));
    assert!(r.message.starts_with("The request signature we calculated does not match"), "{}", r.message);

    let wrong_secret = signed(&s, &h, &params, "not-the-lab-secret", "eu-west-1");
    assert_eq!(check(&s, &h, &wrong_secret).unwrap_err().code, "SignatureDoesNotMatch");
    let wrong_region = signed(&s, &h, &params, crate::SECRET_ACCESS_KEY, "us-east-1");
    let r = check(&s, &h, &wrong_region).unwrap_err();
    assert_eq!(r.message, "Credential should be scoped to a valid region, not 'us-east-1'. ");
    let other_key = query.replace(crate::ACCESS_KEY_ID, "AKIAOTHEREXAMPLE0001");
    assert_eq!(check(&s, &h, &other_key).unwrap_err().code, "UnrecognizedClientException");
    let unsigned = "instanceConnectEndpointId=eice-0aa0000000000000a&remotePort=22&privateIpAddress=127.0.5.10";
    assert_eq!(check(&s, &h, unsigned).unwrap_err().code, "MissingAuthenticationToken");
    let r = check(&s, &h, &query.replace("X-Amz-Expires=60&", "")).unwrap_err();
    assert_eq!((r.status, r.code), (400, "IncompleteSignature"));

    // Still valid at the last second, expired one second later. The checks above took real
    // time: the clock moves to exactly 60 s after the signature (a whole `advance(60)` failed
    // when a second boundary passed meanwhile).
    s.advance(Duration::from_secs(60 - (s.now() - signed_at)));
    assert!(check(&s, &h, &query).is_ok());
    s.advance(Duration::from_secs(1));
    let r = check(&s, &h, &query).unwrap_err();
    assert_eq!((r.status, r.code), (403, "RequestExpired"));
    assert!(r.message.starts_with("Request has expired: X-Amz-Date "), "{}", r.message);
}

#[test]
fn future_dates_beyond_five_minutes_are_refused() {
    let s = state();
    let h = host(&s, "eice-0aa0000000000000a");
    let params = [
        ("instanceConnectEndpointId", "eice-0aa0000000000000a"),
        ("remotePort", "22"),
        ("privateIpAddress", "127.0.5.10"),
    ];
    let query = signed(&s, &h, &params, crate::SECRET_ACCESS_KEY, "eu-west-1");
    let later = State::new(Inventory::from_toml(INVENTORY).unwrap());
    assert!(check(&later, &h, &query).is_ok());
    let earlier_query = {
        s.advance(Duration::from_secs(301));
        signed(&s, &h, &params, crate::SECRET_ACCESS_KEY, "eu-west-1")
    };
    let r = check(&later, &h, &earlier_query).unwrap_err();
    assert!(r.message.starts_with("Signature not yet current: "), "{}", r.message);
}

#[test]
fn tunnel_refusals() {
    let s = state();
    let a = "eice-0aa0000000000000a";
    let h = host(&s, a);
    let cases: Vec<Case<'_>> = vec![
        (
            h.clone(),
            tunnel(a, "127.0.5.10", "2222"),
            400,
            "InvalidParameter",
            "Specify either 22 or 3389 as the RemotePort",
        ),
        (h.clone(), tunnel(a, "127.0.5.10", "0"), 400, "InvalidParameter", "RemotePort is not valid"),
        (h.clone(), tunnel(a, "127.0.5.11", "22"), 400, "InvalidParameter", "an instance in vpc-0123456789abcdef0"),
        (h.clone(), tunnel(a, "127.0.5.99", "22"), 400, "InvalidParameter", "PrivateIpAddress is not valid"),
        (h.clone(), tunnel(a, "fe80::1", "22"), 400, "InvalidParameter", "PrivateIpAddress is not valid"),
        (h.clone(), tunnel(a, "127.0.5.10", "22")[..2].to_vec(), 400, "MissingParameter", "privateIpAddress"),
        (
            h.clone(),
            tunnel("eice-0ff0000000000000f", "127.0.5.10", "22"),
            404,
            "InvalidInstanceConnectEndpointId.NotFound",
            "'eice-0ff0000000000000f' does not exist",
        ),
        (host(&s, "eice-0cc0000000000000c"), tunnel(a, "127.0.5.10", "22"), 400, "InvalidParameter", "The Host header"),
        (
            host(&s, "eice-0dd0000000000000d"),
            tunnel("eice-0dd0000000000000d", "127.0.5.10", "22"),
            400,
            "IncorrectState",
            "'create-in-progress'",
        ),
    ];
    for (h, params, status, code, text) in cases {
        let (got_status, got_code, message) = refusal(&s, &h, &params);
        assert_eq!((got_status, got_code), (status, code), "{params:?}: {message}");
        assert!(message.contains(text), "{params:?}: {message}");
    }
    let mut long = tunnel(a, "127.0.5.10", "22");
    long.push(("maxTunnelDuration".into(), "3601".into()));
    assert!(refusal(&s, &h, &long).2.contains("MaxTunnelDuration is not valid"));
}

#[test]
fn an_iam_cap_requires_max_tunnel_duration() {
    let s = state();
    let c = "eice-0cc0000000000000c";
    let h = host(&s, c);
    let (status, code, message) = refusal(&s, &h, &tunnel(c, "127.0.5.10", "22"));
    assert_eq!((status, code), (403, "AccessDeniedException"));
    assert!(message.contains("ec2-instance-connect:OpenTunnel on resource: arn:aws:ec2:eu-west-1:123456789012:instance-connect-endpoint/eice-0cc0000000000000c"), "{message}");
    let mut over = tunnel(c, "127.0.5.10", "22");
    over.push(("maxTunnelDuration".into(), "601".into()));
    assert_eq!(refusal(&s, &h, &over).0, 403);
    let params = [
        ("instanceConnectEndpointId", c),
        ("remotePort", "22"),
        ("privateIpAddress", "127.0.5.10"),
        ("maxTunnelDuration", "600"),
    ];
    let query = signed(&s, &h, &params, crate::SECRET_ACCESS_KEY, "eu-west-1");
    assert_eq!(check(&s, &h, &query).expect("within the cap").duration, Duration::from_secs(600));
}

#[test]
fn refusal_bodies_are_json() {
    let r = Refusal::too_many("eice-0aa0000000000000a", 20);
    assert_eq!(r.status, 429);
    let body: serde_json::Value = serde_json::from_str(&r.body()).unwrap();
    assert_eq!(body["ErrorCode"], "ThrottlingException");
    assert!(body["Message"].as_str().unwrap().contains("limit of 20 concurrent connections"));
}

/// Session credentials as the STS double issues them, valid for `secs`.
fn issue(state: &State, secs: u64) -> crate::AssumedRole {
    let now = state.now();
    state.issue_credentials(|access_key_id| crate::AssumedRole {
        access_key_id,
        secret_access_key: "issued-secret".into(),
        session_token: "issued-token".into(),
        role_arn: "arn:aws:iam::123456789012:role/ops".into(),
        session_name: "tunnel".into(),
        arn: "arn:aws:sts::123456789012:assumed-role/ops/tunnel".into(),
        assumed_role_id: "AROAEXAMPLE:tunnel".into(),
        caller_key: crate::ACCESS_KEY_ID.into(),
        mfa: false,
        issuer: crate::identity::Issuer::AssumeRole,
        issued: now,
        expires: now + secs,
    })
}

#[test]
fn denied_open_tunnel_names_the_caller_and_issued_keys_sign_with_their_token() {
    let s = state();
    let a = "eice-0aa0000000000000a";
    let h = host(&s, a);
    let params = [("instanceConnectEndpointId", a), ("remotePort", "22"), ("privateIpAddress", "127.0.5.10")];
    s.set_faults(|f| {
        f.deny.insert("ec2-instance-connect:OpenTunnel".into());
    });
    let (status, code, message) = refusal(&s, &h, &tunnel(a, "127.0.5.10", "22"));
    assert_eq!((status, code), (403, "AccessDeniedException"));
    assert_eq!(
        message,
        "User: arn:aws:iam::123456789012:user/lab-user is not authorized to perform: ec2-instance-connect:OpenTunnel \
         on resource: arn:aws:ec2:eu-west-1:123456789012:instance-connect-endpoint/eice-0aa0000000000000a because no \
         identity-based policy allows the ec2-instance-connect:OpenTunnel action"
    );

    let role = issue(&s, 900);
    let sign = |token: Option<&str>, secret: &str| {
        presign(&PresignRequest {
            host: &h,
            path: PATH,
            params: &params,
            access_key_id: &role.access_key_id,
            secret,
            session_token: token,
            region: "eu-west-1",
            service: SIGNING_NAME,
            now: s.now(),
            expires: 60,
        })
    };
    let mut info = EiceTunnelInfo::default();
    let headers = [("Host".to_string(), h.clone())];
    let r = admit(&s, PATH, &sign(Some("issued-token"), "issued-secret"), &headers, &mut info).unwrap_err();
    assert!(
        r.message.starts_with("User: arn:aws:sts::123456789012:assumed-role/ops/tunnel is not authorized"),
        "{r:?}"
    );
    assert_eq!(info.access_key, role.access_key_id);

    s.set_faults(|f| f.deny.clear());
    assert!(check(&s, &h, &sign(Some("issued-token"), "issued-secret")).is_ok());
    let r = check(&s, &h, &sign(Some("issued-token"), crate::SECRET_ACCESS_KEY)).unwrap_err();
    assert_eq!(r.code, "SignatureDoesNotMatch", "an issued key signs with its own secret");
    for token in [None, Some("other-token")] {
        let r = check(&s, &h, &sign(token, "issued-secret")).unwrap_err();
        assert_eq!((r.status, r.code), (403, "UnrecognizedClientException"), "token {token:?}");
    }
    s.advance(Duration::from_secs(900));
    let r = check(&s, &h, &sign(Some("issued-token"), "issued-secret")).unwrap_err();
    assert_eq!((r.status, r.code), (403, "ExpiredTokenException"));
}
