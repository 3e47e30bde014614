//! EC2: DryRun (item 3), DescribeInstances' documented filters (item 6), malformed instance ids
//! (item 7) and the members a real DescribeInstances answer always has (item 10).

use aws_sdk_ec2::types::{DeviceType, Filter, HttpTokensState, VirtualizationType};

use super::block_on;
use super::{WEB, refusal, sdk};
use crate::harness::World;

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

// See: issue 18
#[test]
fn issue_18_3_dry_run_answers_dry_run_operation_or_unauthorized() {
    let world = World::new();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&world.lab).await);
        let answers = [
            refusal(ec2.describe_instances().dry_run(true).send().await),
            refusal(ec2.get_console_output().instance_id(WEB).dry_run(true).send().await),
            refusal(ec2.get_serial_console_access_status().dry_run(true).send().await),
            refusal(ec2.describe_instance_types().dry_run(true).send().await),
        ];
        for a in &answers {
            assert_eq!((a.status, a.code.as_str()), (412, "DryRunOperation"), "{a:?}");
            assert_eq!(a.message, "Request would have succeeded, but DryRun flag is set.");
        }
        world.lab.state().set_faults(|f| _ = f.deny.insert("ec2:GetConsoleOutput".into()));
        let denied = refusal(ec2.get_console_output().instance_id(WEB).dry_run(true).send().await);
        assert_eq!((denied.status, denied.code.as_str()), (403, "UnauthorizedOperation"), "{denied:?}");
    })
}

// See: issue 18
#[test]
fn issue_18_6_every_documented_filter_is_accepted_and_unknown_ones_refused() {
    let world = World::new();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&world.lab).await);
        let ids = |out: aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput| -> Vec<String> {
            out.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id.clone()).collect()
        };
        for (name, value, want) in [
            ("network-interface.addresses.private-ip-address", "127.0.1.10", vec![WEB]),
            ("network-interface.association.public-ip", "127.0.2.10", vec![WEB]),
            ("tag:Role", "web", vec![WEB]),
            ("placement-group-name", "any", vec![]),
            ("ipv6-address", "::1", vec![]),
        ] {
            let out = ec2.describe_instances().filters(filter(name, value)).send().await;
            let got = ids(out.unwrap_or_else(|e| panic!("{name}: {e:?}")));
            assert_eq!(got, want, "{name}={value}");
        }
        for name in ["platform-details", "usage-operation", "metadata-options.http-tokens", "owner-id"] {
            let value = match name {
                "platform-details" => "Linux/UNIX",
                "usage-operation" => "RunInstances",
                "metadata-options.http-tokens" => "required",
                _ => "123456789012",
            };
            let got = ids(ec2.describe_instances().filters(filter(name, value)).send().await.unwrap());
            assert!(got.contains(&WEB.to_string()), "{name}={value}: {got:?}");
        }
        let bad = refusal(ec2.describe_instances().filters(filter("placement-group", "x")).send().await);
        assert_eq!((bad.status, bad.code.as_str()), (400, "InvalidParameterValue"));
        assert_eq!(bad.message, "The filter 'placement-group' is invalid");
    })
}

// See: issue 18
#[test]
fn issue_18_7_malformed_instance_ids_are_malformed_in_every_ec2_call() {
    let world = World::new();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&world.lab).await);
        let malformed = refusal(ec2.get_console_output().instance_id("i-xyz").send().await);
        assert_eq!((malformed.status, malformed.code.as_str()), (400, "InvalidInstanceID.Malformed"), "{malformed:?}");
        assert_eq!(malformed.message, "Invalid id: \"i-xyz\"");
        let malformed = refusal(ec2.describe_instances().instance_ids("i-0123").send().await);
        assert_eq!(malformed.code, "InvalidInstanceID.Malformed");
        let unknown = refusal(ec2.get_console_output().instance_id("i-0123456789abcdef0").send().await);
        assert_eq!((unknown.status, unknown.code.as_str()), (400, "InvalidInstanceID.NotFound"));
        assert!(unknown.request_id.is_some());
    })
}

// See: issue 18
#[test]
fn issue_18_10_instances_carry_the_members_a_real_answer_always_has() {
    let world = World::new();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&world.lab).await);
        let out = ec2.describe_instances().instance_ids(WEB).send().await.unwrap();
        let i = &out.reservations()[0].instances()[0];
        let metadata = i.metadata_options().expect("metadataOptions");
        assert_eq!(metadata.http_tokens(), Some(&HttpTokensState::Required));
        assert_eq!(metadata.http_put_response_hop_limit(), Some(2));
        assert_eq!((i.platform_details(), i.usage_operation()), (Some("Linux/UNIX"), Some("RunInstances")));
        assert_eq!(i.root_device_type(), Some(&DeviceType::Ebs));
        assert_eq!(i.virtualization_type(), Some(&VirtualizationType::Hvm));
        let eni = &i.network_interfaces()[0];
        assert_eq!(eni.private_ip_address(), Some("127.0.1.10"));
        assert_eq!(eni.association().and_then(|a| a.public_ip()), Some("127.0.2.10"));
        assert_eq!(eni.attachment().and_then(|a| a.device_index()), Some(0));
        assert_eq!(eni.private_ip_addresses()[0].primary(), Some(true));
        assert!(eni.network_interface_id().is_some_and(|id| id.starts_with("eni-")));
        assert!(i.monitoring().is_some() && i.placement().and_then(|p| p.tenancy()).is_some());
    })
}
