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

/// A lab of one Region without instances.
fn empty_lab(dir: &std::path::Path) -> ec2_lab::Lab {
    let inventory = ec2_lab::Inventory::from_toml("region = \"eu-west-1\"\n").unwrap();
    ec2_lab::Lab::start(inventory, &dir.join("lab")).expect("starting the lab")
}

/// `sh -c SCRIPT` with `$1` = `arg`: its stdout bytes.
fn sh_bytes(script: &str, arg: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new("sh").arg("-c").arg(script).arg("sh").arg(arg).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

// See: issue 17
#[test]
fn issue_17_import_key_pair_reads_every_documented_form_and_refuses_the_rest() {
    use aws_sdk_ec2::primitives::Blob;

    let dir = tempfile::tempdir().unwrap();
    let lab = empty_lab(dir.path());
    let key = dir.path().join("rsa");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = key.with_extension("pub");
    let openssh = std::fs::read(&public).unwrap();
    let ssh2 = sh_bytes("ssh-keygen -e -f \"$1\"", &public);
    let der = sh_bytes("ssh-keygen -e -m PKCS8 -f \"$1\" | openssl pkey -pubin -outform DER", &public);
    let pem = sh_bytes("ssh-keygen -e -m PKCS8 -f \"$1\"", &public);
    let md5 = String::from_utf8(sh_bytes(
        "ssh-keygen -e -m PKCS8 -f \"$1\" | openssl pkey -pubin -outform DER | openssl md5 -c",
        &public,
    ))
    .unwrap();
    let md5 = md5.rsplit("= ").next().unwrap().trim().to_string();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&lab).await);
        for (n, material) in [openssh, ssh2, der, pem].into_iter().enumerate() {
            let out = (ec2.import_key_pair().key_name(format!("k{n}")).public_key_material(Blob::new(material)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("form {n}: {e:?}"));
            assert_eq!(out.key_fingerprint(), Some(md5.as_str()), "form {n}");
            assert_eq!(out.key_name(), Some(format!("k{n}").as_str()));
            assert!(out.key_pair_id().is_some_and(|id| id.starts_with("key-") && id.len() == 21), "{out:?}");
        }
        let dup =
            refusal(ec2.import_key_pair().key_name("k0").public_key_material(Blob::new(b"x".to_vec())).send().await);
        assert_eq!((dup.status, dup.code.as_str()), (400, "InvalidKey.Format"), "the key is read first: {dup:?}");
        let line = std::fs::read(&public).unwrap();
        let dup =
            refusal(ec2.import_key_pair().key_name("k0").public_key_material(Blob::new(line.clone())).send().await);
        assert_eq!((dup.status, dup.code.as_str()), (400, "InvalidKeyPair.Duplicate"), "{dup:?}");
        assert_eq!(dup.message, "The keypair 'k0' already exists.");
        let dsa = b"ssh-dss AAAAB3NzaC1kc3MAAAABfwAAAAF/AAAAAX8AAAABfw== x".to_vec();
        let ecdsa = b"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAAAA x".to_vec();
        for bad in [dsa, ecdsa, b"not a key".to_vec()] {
            let r = refusal(ec2.import_key_pair().key_name("bad").public_key_material(Blob::new(bad)).send().await);
            assert_eq!(
                (r.code.as_str(), r.message.as_str()),
                ("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
            );
        }
        for name in ["x".repeat(256), " lead".into(), "näme".into()] {
            let r = refusal(
                ec2.import_key_pair().key_name(&name).public_key_material(Blob::new(line.clone())).send().await,
            );
            assert_eq!((r.status, r.code.as_str()), (400, "InvalidParameterValue"), "{name}: {r:?}");
        }
        let r = refusal(ec2.import_key_pair().public_key_material(Blob::new(line.clone())).send().await);
        assert_eq!(r.code, "MissingParameter", "{r:?}");
        assert!(
            ec2.import_key_pair().key_name("x".repeat(255)).public_key_material(Blob::new(line)).send().await.is_ok()
        );
        // DescribeKeyPairs sees the imports.
        let listed = ec2.describe_key_pairs().key_names("k3").include_public_key(true).send().await.unwrap();
        let k3 = &listed.key_pairs()[0];
        assert_eq!(k3.key_fingerprint(), Some(md5.as_str()));
        assert!(k3.public_key().is_some_and(|p| p.starts_with("ssh-rsa AAAA") && p.ends_with(" k3")), "{k3:?}");
    })
}

// See: issue 17
#[test]
fn issue_17_delete_key_pair_by_name_or_id_and_unknown_names_succeed() {
    use aws_sdk_ec2::primitives::Blob;

    let dir = tempfile::tempdir().unwrap();
    let lab = empty_lab(dir.path());
    let line = ec2_lab::inventory::LAB_ADMIN_PUBLIC_KEY.as_bytes().to_vec();
    block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(&lab).await);
        let a = ec2.import_key_pair().key_name("a").public_key_material(Blob::new(line.clone())).send().await.unwrap();
        ec2.import_key_pair().key_name("b").public_key_material(Blob::new(line)).send().await.unwrap();
        let gone = ec2.delete_key_pair().key_pair_id(a.key_pair_id().unwrap()).send().await.unwrap();
        assert_eq!((gone.r#return(), gone.key_pair_id()), (Some(true), a.key_pair_id()));
        let gone = ec2.delete_key_pair().key_name("b").send().await.unwrap();
        assert_eq!(gone.r#return(), Some(true));
        let again = ec2.delete_key_pair().key_name("b").send().await.unwrap();
        assert_eq!((again.r#return(), again.key_pair_id()), (Some(true), None), "an unknown name succeeds");
        let r = refusal(ec2.describe_key_pairs().key_names("a").send().await);
        assert_eq!(
            (r.code.as_str(), r.message.as_str()),
            ("InvalidKeyPair.NotFound", "The key pair 'a' does not exist")
        );
        assert!(ec2.describe_key_pairs().send().await.unwrap().key_pairs().is_empty());
        let r = refusal(ec2.delete_key_pair().send().await);
        assert_eq!(r.code, "MissingParameter", "{r:?}");
    })
}
