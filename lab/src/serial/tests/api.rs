//! The API side: the push's errors in order, GetSerialConsoleAccessStatus, DescribeInstanceTypes.

use serde_json::{Value, json};

use super::{NO_PASSWORD, STOPPED, WEB, XEN, ec2, new_key, openssh, push_raw, world};

#[test]
fn push_errors_in_order() {
    let w = world();
    let key = openssh(&new_key());
    let err = |body: Value| {
        let (status, body) = push_raw(&w.lab, body);
        (
            status,
            body["__type"].as_str().unwrap_or_default().to_string(),
            body["Message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let invalid = |body: Value| {
        let (status, kind, _) = err(body.clone());
        assert_eq!((status, kind.as_str()), (400, "InvalidArgsException"), "{body}");
    };
    invalid(json!({"InstanceId": "i-XYZ", "SSHPublicKey": key}));
    invalid(json!({"InstanceId": WEB}));
    invalid(json!({"SSHPublicKey": key}));
    invalid(json!({"InstanceId": WEB, "SSHPublicKey": "ssh-ed25519 AAAA"}));
    invalid(json!({"InstanceId": WEB, "SSHPublicKey": format!("ecdsa-sha2-nistp256 {}", "A".repeat(120))}));
    invalid(json!({"InstanceId": WEB, "SSHPublicKey": key, "SerialPort": 1}));
    // Argument errors come before the account check.
    w.lab.state().set_serial_access(false);
    invalid(json!({"InstanceId": WEB, "SSHPublicKey": key, "SerialPort": 1}));
    let (status, kind, message) = err(json!({"InstanceId": "i-0ffffffffffffffff", "SSHPublicKey": key}));
    assert_eq!((status, kind.as_str()), (403, "SerialConsoleAccessDisabledException"));
    assert!(message.contains("EnableSerialConsoleAccess"), "{message}");
    let (status, xml) = ec2(&w.lab, "Action=GetSerialConsoleAccessStatus");
    assert_eq!(status, 200);
    assert!(
        xml.contains(
            "<GetSerialConsoleAccessStatusResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"
        ) && xml
            .contains("<serialConsoleAccessEnabled>false</serialConsoleAccessEnabled><managedBy>account</managedBy>"),
        "{xml}"
    );
    w.lab.state().set_serial_access(true);
    assert!(ec2(&w.lab, "Action=GetSerialConsoleAccessStatus").1.contains(">true<"));

    let (status, kind, _) = err(json!({"InstanceId": "i-0ffffffffffffffff", "SSHPublicKey": key}));
    assert_eq!((status, kind.as_str()), (404, "EC2InstanceNotFoundException"));
    let (status, kind, _) = err(json!({"InstanceId": STOPPED, "SSHPublicKey": key}));
    assert_eq!((status, kind.as_str()), (400, "EC2InstanceStateInvalidException"));
    let (status, kind, message) = err(json!({"InstanceId": XEN, "SSHPublicKey": key}));
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "EC2InstanceTypeInvalidException", "Only Nitro instance types are currently supported.")
    );
    // Bare metal (m5.metal) has a serial console; so does the default t3.micro.
    let (status, kind, _) = err(json!({"InstanceId": NO_PASSWORD, "SSHPublicKey": key, "SerialPort": 0}));
    assert_eq!((status, kind.as_str()), (200, ""));
    let (status, kind, message) = err(json!({"InstanceId": NO_PASSWORD, "SSHPublicKey": key}));
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            400,
            "SerialConsoleSessionLimitExceededException",
            "The instance currently has 1 active serial console session."
        )
    );
}

#[test]
fn describe_instance_types() {
    let w = world();
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstanceTypes&InstanceType.1=t2.micro&InstanceType.2=m5.metal");
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<DescribeInstanceTypesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"),
        "{xml}"
    );
    let items: Vec<&str> = xml.split("<item><instanceType>").skip(1).collect();
    assert_eq!(items.len(), 2, "{xml}");
    assert!(items[0].starts_with("t2.micro<") && items[0].contains("<hypervisor>xen</hypervisor>"), "{xml}");
    assert!(items[0].contains("<bareMetal>false</bareMetal>") && items[0].contains("<currentGeneration>true<"));
    assert!(items[1].starts_with("m5.metal<") && !items[1].contains("<hypervisor>"), "{xml}");
    assert!(items[1].contains("<bareMetal>true</bareMetal>"), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstanceTypes&InstanceType.1=t4g.micro");
    assert!(status == 200 && xml.contains("<hypervisor>nitro</hypervisor>") && xml.contains("<item>arm64</item>"));
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstanceTypes&InstanceType.1=t3.micro&InstanceType.2=x9.huge");
    assert_eq!(status, 400);
    assert!(
        xml.contains("<Code>InvalidInstanceType</Code><Message>The following supplied instance types do not exist: [x9.huge]</Message>"),
        "{xml}"
    );
    let (status, xml) = ec2(&w.lab, "Action=DescribeInstanceTypes&Filter.1.Name=hypervisor&Filter.1.Value.1=xen");
    assert_eq!(status, 200);
    assert!(xml.contains("t2.micro") && !xml.contains("t3.micro") && !xml.contains("m5.metal"), "{xml}");
}
