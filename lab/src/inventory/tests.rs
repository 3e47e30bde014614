//! Inventory checks, DNS names, the demo's key pair and the generator. No lab needed.

use std::collections::HashSet;

use super::*;

fn two(first_state: &str, second_state: &str, second_ip: &str) -> String {
    format!(
        "[[instance]]\nid = \"i-0f0000000000000a1\"\nstate = \"{first_state}\"\nprivate_ip = \"127.0.7.10\"\npublic_ip = \"127.0.8.10\"\n\
         [[instance]]\nid = \"i-0f0000000000000a2\"\nstate = \"{second_state}\"\nprivate_ip = \"{second_ip}\"\n"
    )
}

#[test]
fn only_running_instances_need_addresses_of_their_own() {
    for (a, b, ip) in [
        ("running", "terminated", "127.0.7.10"),
        ("stopped", "running", "127.0.8.10"),
        ("terminated", "stopped", "127.0.7.10"),
    ] {
        Inventory::from_toml(&two(a, b, ip)).unwrap_or_else(|e| panic!("{a} and {b} on {ip}: {e:#}"));
    }
    for ip in ["127.0.7.10", "127.0.8.10"] {
        let err = Inventory::from_toml(&two("running", "running", ip)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "instances i-0f0000000000000a1 and i-0f0000000000000a2 are both running with address {ip}: only stopped \
                 or terminated instances may share a running instance's address"
            )
        );
    }
    let err = Inventory::from_toml(&two("running", "stopped", "127.0.7.10").replace("a2", "a1")).unwrap_err();
    assert_eq!(err.to_string(), "instance i-0f0000000000000a1 is listed twice");

    // Lab::start checks an inventory built in code before it binds anything.
    let mut inv = Inventory::from_toml(&two("running", "stopped", "127.0.7.10")).unwrap();
    inv.instances[1].state = "running".into();
    let dir = std::env::temp_dir().join(format!("ec2-lab-dup-{}", std::process::id()));
    let err = crate::Lab::start(inv, &dir).err().expect("refused");
    assert!(format!("{err:#}").contains("are both running with address 127.0.7.10"), "{err:#}");
    assert!(!dir.exists());
}

#[test]
fn key_pairs_are_checked() {
    let text = |key: &str| format!("[[key_pair]]\nname = \"k\"\npublic_key = \"{key}\"\n");
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMvfKxBYnNctRhy0eWtanhLuI4lG2M5d5QKsCXzXZ+g1Ulh5ccNUNDZUuaQKVESyJ9kEx4WM9AnndEyVu/dBong=";
    assert!(Inventory::from_toml(&text(ecdsa)).unwrap_err().to_string().contains("ssh-ed25519 or ssh-rsa"));
    assert!(Inventory::from_toml(&text("ssh-ed25519 AAAA")).is_err());
    let twice = format!("{}{}", text(LAB_ADMIN_PUBLIC_KEY), text(LAB_ADMIN_PUBLIC_KEY));
    assert_eq!(Inventory::from_toml(&twice).unwrap_err().to_string(), "key pair k is listed twice");
}

#[test]
fn demo_key_pair_is_lab_admin() {
    let demo = Inventory::demo();
    assert_eq!(demo.key_pair("lab-admin").map(|k| k.public_key.as_str()), Some(LAB_ADMIN_PUBLIC_KEY));
    let launched: Vec<&str> = (demo.instances.iter())
        .filter(|i| i.key_name.as_deref() == Some("lab-admin"))
        .filter_map(|i| i.name.as_deref())
        .collect();
    assert_eq!(launched, ["web-1", "api-1"]);
    let private = russh::keys::PrivateKey::from_openssh(LAB_ADMIN_PRIVATE_KEY).unwrap();
    let public = private.public_key().to_openssh().unwrap();
    assert_eq!(public, LAB_ADMIN_PUBLIC_KEY);
    assert!(demo.serve_ssh);
}

#[test]
fn dns_names_follow_the_region() {
    let inv = Inventory::from_toml(&two("running", "stopped", "127.0.7.10")).unwrap();
    let i = &inv.instances[0];
    assert_eq!(i.private_dns_name("eu-west-1"), "ip-127-0-7-10.eu-west-1.compute.internal");
    assert_eq!(i.public_dns_name("eu-west-1"), "ec2-127-0-8-10.eu-west-1.compute.amazonaws.com");
    assert_eq!(i.private_dns_name("us-east-1"), "ip-127-0-7-10.ec2.internal");
    assert_eq!(i.public_dns_name("us-east-1"), "ec2-127-0-8-10.compute-1.amazonaws.com");
    assert_eq!(inv.instances[1].public_dns_name("eu-west-1"), "");
    assert_eq!(i.host_key_comment("eu-west-1"), "root@ip-127-0-7-10.eu-west-1.compute.internal");
}

#[test]
fn generated_inventory_is_large_varied_and_reproducible() {
    let inv = Inventory::generated(10_000, 42);
    inv.check().unwrap();
    assert_eq!(inv.instances.len(), 10_000);
    assert!(!inv.serve_ssh);
    let again = Inventory::generated(10_000, 42);
    let shape = |inv: &Inventory| -> Vec<String> {
        inv.instances
            .iter()
            .map(|i| format!("{} {:?} {:?} {} {:?}", i.id, i.private_ip, i.public_ip, i.state, i.console_keys))
            .collect()
    };
    assert_eq!(shape(&inv), shape(&again));
    assert_ne!(shape(&inv), shape(&Inventory::generated(10_000, 43)));

    let running: Vec<&InstanceSpec> = inv.instances.iter().filter(|i| i.state == "running").collect();
    let terminated: Vec<&InstanceSpec> = inv.instances.iter().filter(|i| i.state == "terminated").collect();
    assert_eq!(running.len() + terminated.len(), 10_000);
    assert!((350..=650).contains(&terminated.len()), "about 5 % terminated: {}", terminated.len());
    let bound: HashSet<Ipv4Addr> = running.iter().flat_map(|i| [i.private_ip, i.public_ip]).flatten().collect();
    for ip in &bound {
        let [a, b, _, d] = ip.octets();
        assert!(a == 127 && b >= 10 && d != 0 && d != 255, "{ip}");
    }
    assert!(terminated.iter().all(|t| t.private_ip.is_some_and(|ip| bound.contains(&ip))), "recycled addresses");
    let kinds: HashSet<String> = inv.instances.iter().map(|i| format!("{:?}", i.console_keys())).collect();
    assert_eq!(kinds.len(), 6, "every console kind: {kinds:?}");
    assert!(inv.instances.iter().any(|i| i.platform.is_some()));
    assert!(inv.instances.iter().any(|i| i.key_name.as_deref() == Some("lab-admin")));
    let ids: HashSet<&str> = inv.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn demo_roles_and_implicit_groups() {
    let demo = Inventory::demo();
    let roles: Vec<(&str, bool, &str)> = demo.roles.iter().map(|r| (r.arn.as_str(), r.mfa, r.name())).collect();
    assert_eq!(
        roles,
        [
            ("arn:aws:iam::123456789012:role/lab-admin-mfa", true, "lab-admin-mfa"),
            ("arn:aws:iam::123456789012:role/lab-readonly", false, "lab-readonly"),
        ]
    );
    let db = demo.instances.iter().find(|i| i.name.as_deref() == Some("db-1")).unwrap();
    assert_eq!(db.security_group_ids(), [CLOSED_SECURITY_GROUP_ID]);
    assert_eq!(demo.instances[0].security_group_ids(), [OPEN_SECURITY_GROUP_ID]);
    assert_eq!(
        demo.instances[0].instance_profile_arn(&demo.account).as_deref(),
        Some("arn:aws:iam::123456789012:instance-profile/lab-ssm")
    );
    let ids: Vec<&str> = demo.all_security_groups().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, [OPEN_SECURITY_GROUP_ID, CLOSED_SECURITY_GROUP_ID]);
    assert_eq!(demo.security_group(OPEN_SECURITY_GROUP_ID).map(|g| g.name.as_str()), Some(OPEN_SECURITY_GROUP_NAME));
    assert_eq!(
        demo.security_group(CLOSED_SECURITY_GROUP_ID).map(|g| g.name.as_str()),
        Some(CLOSED_SECURITY_GROUP_NAME)
    );
}

#[test]
fn groups_roles_and_profiles_are_checked() {
    let err = |text: &str| Inventory::from_toml(text).unwrap_err().to_string();
    let group = |id: &str, rule: &str| format!("[[security_group]]\nid = \"{id}\"\nname = \"g\"\ningress = [{rule}]\n");
    assert!(
        Inventory::from_toml(&group("sg-0123abcd", "{ from_port = 22, to_port = 22, cidrs = [\"10.0.0.0/8\"] }"))
            .is_ok()
    );
    assert!(err(&group("sg-web", "")).contains("8 or 17 lower-case hex digits"));
    assert!(err(&group(OPEN_SECURITY_GROUP_ID, "")).contains("implicit"));
    assert!(err(&group("sg-0123abcd", "{ protocol = \"tcp\" }")).contains("need from_port and to_port"));
    assert!(err(&group("sg-0123abcd", "{ from_port = 23, to_port = 22 }")).contains("above to_port"));
    assert!(
        err(&group("sg-0123abcd", "{ protocol = \"-1\", cidrs = [\"10.0.0.0/33\"] }")).contains("not an IPv4 CIDR")
    );
    assert!(err(&group("sg-0123abcd", "{ protocol = \"icmp\" }")).contains("not tcp, udp or -1"));
    let twice = format!("{}{}", group("sg-0123abcd", ""), group("sg-0123abcd", ""));
    assert_eq!(err(&twice), "security group sg-0123abcd is listed twice");

    let instance = |extra: &str| format!("[[instance]]\nid = \"i-0f0000000000000a1\"\n{extra}\n");
    assert_eq!(
        err(&instance("security_groups = [\"sg-0123abcd\"]")),
        "instance i-0f0000000000000a1: security group sg-0123abcd does not exist"
    );
    assert!(Inventory::from_toml(&instance("security_groups = [\"sg-0000000000000000c\"]")).is_ok());
    assert!(Inventory::from_toml(&instance("instance_profile = \"none\"")).is_ok());
    assert!(
        Inventory::from_toml(&instance("instance_profile = \"arn:aws:iam::123456789012:instance-profile/x\"")).is_ok()
    );
    assert!(
        err(&instance("instance_profile = \"arn:aws:iam::999999999999:instance-profile/x\""))
            .contains("instance_profile must be")
    );

    let role = |arn: &str| format!("[[role]]\narn = \"{arn}\"\n");
    assert!(Inventory::from_toml(&role("arn:aws:iam::123456789012:role/ops")).is_ok());
    for bad in [
        "arn:aws:iam::999999999999:role/ops",
        "arn:aws:iam::123456789012:user/ops",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/a/b",
    ] {
        assert!(err(&role(bad)).contains("the ARN must be arn:aws:iam::123456789012:role/<name>"), "{bad}");
    }
    let twice = format!("{}{}", role("arn:aws:iam::123456789012:role/ops"), role("arn:aws:iam::123456789012:role/ops"));
    assert_eq!(err(&twice), "role arn:aws:iam::123456789012:role/ops is listed twice");
}
