//! IAM denials (`Faults::deny`) over HTTP in each protocol's shape, naming the caller (the lab
//! user or an assumed role), and the access key of every call in the request log.

use super::element;
use crate::inventory::LAB_ADMIN_PUBLIC_KEY;
use crate::test_world::{World, ec2_as, json_as, sts};
use crate::{ACCESS_KEY_ID, ApiCall, Inventory};

const WEB: &str = "i-0a1b2c3d4e5f60718";
const USER: &str = "arn:aws:iam::123456789012:user/lab-user";

fn world() -> World {
    let mut inventory = Inventory::demo();
    inventory.serve_ssh = false;
    crate::test_world::start("iam", inventory)
}

fn deny(w: &World, actions: &[&str]) {
    w.lab.state().set_faults(|f| f.deny = actions.iter().map(|a| a.to_string()).collect());
}

fn json_error(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (v["__type"].as_str().unwrap_or_default().into(), v["Message"].as_str().unwrap_or_default().into())
}

#[test]
fn denied_ec2_calls_are_unauthorized_operations() {
    let w = world();
    deny(&w, &["ec2:DescribeInstances", "ec2:GetSerialConsoleAccessStatus", "ec2:DescribeInstanceConnectEndpoints"]);
    for op in ["DescribeInstances", "GetSerialConsoleAccessStatus", "DescribeInstanceConnectEndpoints"] {
        let (status, xml) = ec2_as(&w.lab, ACCESS_KEY_ID, &format!("Action={op}"));
        assert_eq!(status, 403, "{xml}");
        let message = format!(
            "You are not authorized to perform this operation. User: {USER} is not authorized to perform: ec2:{op} \
             because no identity-based policy allows the ec2:{op} action"
        );
        assert_eq!(element(&xml, "Code"), Some("UnauthorizedOperation"), "{xml}");
        assert_eq!(element(&xml, "Message"), Some(message.as_str()), "{xml}");
        assert!(xml.contains("<Response><Errors><Error>"), "{xml}");
    }
    let (status, xml) = ec2_as(&w.lab, ACCESS_KEY_ID, "Action=DescribeKeyPairs");
    assert_eq!(status, 200, "other actions are allowed: {xml}");
    deny(&w, &[]);
    assert_eq!(ec2_as(&w.lab, ACCESS_KEY_ID, "Action=DescribeInstances").0, 200);
}

#[test]
fn denied_json_calls_are_access_denied_exceptions() {
    let w = world();
    deny(&w, &["ssm:StartSession", "ssm:DescribeInstanceInformation", "ec2-instance-connect:SendSSHPublicKey"]);
    let (status, body) = json_as(&w.lab, ACCESS_KEY_ID, "AmazonSSM.StartSession", &format!(r#"{{"Target":"{WEB}"}}"#));
    assert_eq!(status, 400);
    assert_eq!(
        json_error(&body),
        (
            "AccessDeniedException".into(),
            format!(
                "User: {USER} is not authorized to perform: ssm:StartSession on resource: \
                 arn:aws:ec2:eu-west-1:123456789012:instance/{WEB} because no identity-based policy allows the \
                 ssm:StartSession action"
            )
        )
    );
    let (status, body) = json_as(&w.lab, ACCESS_KEY_ID, "AmazonSSM.DescribeInstanceInformation", "{}");
    assert_eq!(status, 400);
    let (code, message) = json_error(&body);
    assert_eq!(code, "AccessDeniedException");
    assert!(
        message.contains("ssm:DescribeInstanceInformation on resource: arn:aws:ssm:eu-west-1:123456789012:* because")
    );
    let push =
        format!(r#"{{"InstanceId":"{WEB}","InstanceOSUser":"ec2-user","SSHPublicKey":"{}"}}"#, LAB_ADMIN_PUBLIC_KEY);
    let (status, body) = json_as(&w.lab, ACCESS_KEY_ID, "AWSEC2InstanceConnectService.SendSSHPublicKey", &push);
    assert_eq!(status, 403);
    let (code, message) = json_error(&body);
    assert_eq!(code, "AuthException", "Instance Connect's own denial");
    assert!(message.contains("ec2-instance-connect:SendSSHPublicKey on resource: arn:aws:ec2:eu-west-1:123456789012:instance/i-0a1b2c3d4e5f60718"), "{message}");
    assert!(w.lab.state().pushed_keys().is_empty(), "a denied push stores nothing");
    let serial = format!(r#"{{"InstanceId":"{WEB}","SSHPublicKey":"{}"}}"#, LAB_ADMIN_PUBLIC_KEY);
    let (_, body) =
        json_as(&w.lab, ACCESS_KEY_ID, "AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey", &serial);
    assert_ne!(json_error(&body).0, "AuthException", "not denied: {body}");
}

#[test]
fn denials_name_the_assumed_role_and_the_log_names_every_key() {
    let w = world();
    let state = w.lab.state();
    let form = "Action=AssumeRole&RoleArn=arn:aws:iam::123456789012:role/lab-readonly&RoleSessionName=broker";
    let (status, xml) = sts(&w.lab, ACCESS_KEY_ID, form);
    assert_eq!(status, 200, "{xml}");
    let key = element(&xml, "AccessKeyId").unwrap().to_string();
    deny(&w, &["ec2:DescribeInstances"]);
    let (status, xml) = ec2_as(&w.lab, &key, "Action=DescribeInstances");
    assert_eq!(status, 403);
    assert!(
        xml.contains("User: arn:aws:sts::123456789012:assumed-role/lab-readonly/broker is not authorized to perform: ec2:DescribeInstances"),
        "{xml}"
    );
    assert_eq!(ec2_as(&w.lab, &key, "Action=DescribeKeyPairs").0, 200);
    let (status, _) = json_as(&w.lab, &key, "AmazonSSM.DescribeInstanceInformation", "{}");
    assert_eq!(status, 200);

    // Faults come before denials.
    state.set_faults(|f| f.throttle_next = 1);
    assert_eq!(ec2_as(&w.lab, &key, "Action=DescribeInstances").0, 503);

    let call = |service: &str, operation: &str, status, access_key: &str| ApiCall {
        service: service.into(),
        operation: operation.into(),
        status,
        access_key: access_key.into(),
    };
    assert_eq!(
        state.calls(),
        [
            call("sts", "AssumeRole", 200, ACCESS_KEY_ID),
            call("ec2", "DescribeInstances", 403, &key),
            call("ec2", "DescribeKeyPairs", 200, &key),
            call("ssm", "DescribeInstanceInformation", 200, &key),
            call("ec2", "DescribeInstances", 503, &key),
        ]
    );
}
