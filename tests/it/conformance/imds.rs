//! Item 11: the IMDS token PUT refuses proxied requests, `/latest/meta-data/` lists its
//! children, and callers are named with their real ARN (GetCallerIdentity, `#Caller=`).

use super::block_on;
use super::instance_connect::active_keys;
use super::{WEB, http, sdk};
use crate::harness::World;

// See: issue 18
#[test]
fn issue_18_11_the_token_put_refuses_x_forwarded_for_and_directories_list_their_children() {
    let world = World::new();
    let imds = world.lab.instance(WEB).imds_url.trim_start_matches("http://").to_string();
    let put = format!("PUT /latest/api/token HTTP/1.1\r\nHost: {imds}\r\nX-aws-ec2-metadata-token-ttl-seconds: 5\r\n");
    let (status, _, _) = http(&imds, &format!("{put}X-Forwarded-For: 10.0.0.1\r\n"), b"");
    assert_eq!(status, 403, "IMDSv2 refuses a token to a request that went through a proxy");
    let (status, _, token) = http(&imds, &put, b"");
    assert_eq!(status, 200);
    let get = |path: &str| {
        http(&imds, &format!("GET {path} HTTP/1.1\r\nHost: {imds}\r\nX-aws-ec2-metadata-token: {token}\r\n"), b"")
    };
    let (status, _, listing) = get("/latest/meta-data/");
    assert_eq!(status, 200);
    let children: Vec<&str> = listing.lines().collect();
    for child in ["instance-id", "local-ipv4", "managed-ssh-keys/", "placement/", "services/"] {
        assert!(children.contains(&child), "{child} in {children:?}");
    }
    assert_eq!(get("/latest/meta-data/placement/").2, "availability-zone");
    assert_eq!(get("/latest/meta-data/local-ipv4").2, "127.0.1.10");
}

// See: issue 18
#[test]
fn issue_18_11_callers_are_named_by_their_real_arn() {
    let world = World::new();
    block_on(async {
        let config = sdk(&world.lab).await;
        let me = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await.unwrap();
        let arn = "arn:aws:iam::123456789012:user/lab-user";
        assert_eq!((me.arn(), me.account()), (Some(arn), Some("123456789012")));
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";
        aws_sdk_ec2instanceconnect::Client::new(&config)
            .send_ssh_public_key()
            .instance_id(WEB)
            .instance_os_user("ec2-user")
            .ssh_public_key(key)
            .send()
            .await
            .unwrap();
        let blob = active_keys(&world, "ec2-user");
        assert!(blob.contains(&format!("\n#Caller={arn}\n")), "{blob}");
    })
}
