//! IAM at the EICE service end to end: `ec2-instance-connect:OpenTunnel` in `Faults::deny`
//! refuses the upgrade with IAM's 403 and JSON body, and session credentials from the STS
//! double (AssumeRole over HTTP) open tunnels, each logged with its access key.

use super::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/ops";

#[test]
fn denied_open_tunnel_is_refused_and_assumed_role_keys_open_tunnels() {
    let inventory = format!("{INVENTORY}\n[[role]]\narn = \"{ROLE}\"\n");
    let w = crate::test_world::start("eice-iam", Inventory::from_toml(&inventory).unwrap());
    let state = w.lab.state();
    state.set_faults(|f| {
        f.deny.insert("ec2-instance-connect:OpenTunnel".into());
    });
    w.rt.block_on(async {
        let (status, body) = refusal(w.open(&w.signed(WEB_IP, "22")).await);
        assert_eq!((status, body["ErrorCode"].as_str()), (403, Some("AccessDeniedException")));
        assert_eq!(
            body["Message"],
            "User: arn:aws:iam::123456789012:user/lab-user is not authorized to perform: \
             ec2-instance-connect:OpenTunnel on resource: \
             arn:aws:ec2:eu-west-1:123456789012:instance-connect-endpoint/eice-0aa0000000000000a because no \
             identity-based policy allows the ec2-instance-connect:OpenTunnel action"
        );
    });

    let form = format!("Action=AssumeRole&RoleArn={ROLE}&RoleSessionName=tunnel");
    let (status, xml) = crate::test_world::sts(&w.lab, crate::ACCESS_KEY_ID, &form);
    assert_eq!(status, 200, "{xml}");
    let role = state.assumed_roles()[0].clone();
    state.set_faults(|f| f.deny.clear());
    w.rt.block_on(async {
        let host = w.dns_name();
        let params = [("instanceConnectEndpointId", EICE), ("remotePort", "22"), ("privateIpAddress", WEB_IP)];
        let query = presign(&PresignRequest {
            host: &host,
            path: PATH,
            params: &params,
            access_key_id: &role.access_key_id,
            secret: &role.secret_access_key,
            session_token: Some(&role.session_token),
            region: "eu-west-1",
            service: SIGNING_NAME,
            now: state.now(),
            expires: 60,
        });
        let mut ws = w.open(&query).await.expect("the assumed role's credentials open the tunnel");
        assert!(read_until(&mut ws, b"\r\n").await.starts_with(b"SSH-2.0-"));
    });
    let tunnels = w.lab.eice_tunnels();
    let seen: Vec<(u16, &str)> = tunnels.iter().map(|t| (t.status, t.access_key.as_str())).collect();
    assert_eq!(seen, [(403, crate::ACCESS_KEY_ID), (101, role.access_key_id.as_str())]);
    let logged: Vec<(u16, String)> =
        state.calls().into_iter().filter(|c| c.service == LOG_SERVICE).map(|c| (c.status, c.access_key)).collect();
    assert_eq!(logged, [(403, crate::ACCESS_KEY_ID.to_string()), (101, role.access_key_id.clone())]);
}
