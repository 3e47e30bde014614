//! EC2 Instance Connect: `InstanceOSUser`'s whole pattern (item 4), keys stored trimmed (item 5)
//! and keys validated inside (item 8).

use std::process::Command;

use super::block_on;
use super::{WEB, refusal, sdk};
use crate::harness::World;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";

/// A fresh RSA public key of `bits` from ssh-keygen.
fn rsa_key(world: &World, bits: u32) -> String {
    let path = world.path(&format!("rsa-{bits}"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", &bits.to_string(), "-N", "", "-C", "conformance", "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

// See: issue 18
#[test]
fn issue_18_4_os_users_follow_the_whole_documented_pattern() {
    let world = World::new();
    block_on(async {
        let eic = aws_sdk_ec2instanceconnect::Client::new(&sdk(&world.lab).await);
        let push = |user: &'static str| {
            eic.send_ssh_public_key().instance_id(WEB).instance_os_user(user).ssh_public_key(KEY).send()
        };
        // The pattern's second alternative: digits first, then a letter or one of @._-.
        for user in ["123admin", "1.x", "svc$"] {
            assert_eq!(push(user).await.map(|o| o.success()).ok(), Some(true), "{user}");
        }
        for user in ["123", "a$b", "-x"] {
            let refused = refusal(push(user).await);
            assert_eq!((refused.status, refused.code.as_str()), (400, "InvalidArgsException"), "{user}: {refused:?}");
        }
    })
}

// See: issue 18
#[test]
fn issue_18_8_keys_are_validated_as_the_service_documents() {
    let world = World::new();
    block_on(async {
        world.lab.state().set_serial_access(true);
        let eic = aws_sdk_ec2instanceconnect::Client::new(&sdk(&world.lab).await);
        let push = |key: String| {
            eic.send_ssh_public_key().instance_id(WEB).instance_os_user("ec2-user").ssh_public_key(key).send()
        };
        let serial = |key: String| eic.send_serial_console_ssh_public_key().instance_id(WEB).ssh_public_key(key).send();
        let short_rsa = rsa_key(&world, 1024);
        let bad_base64 = KEY.replace("AAAAINYty6T5", "AAAAINYty6T!");
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= ecdsa";
        for key in [short_rsa.clone(), bad_base64, ecdsa.to_string()] {
            let refused = refusal(push(key.clone()).await);
            assert_eq!((refused.status, refused.code.as_str()), (400, "InvalidArgsException"), "{key}: {refused:?}");
        }
        let refused = refusal(serial(short_rsa).await);
        assert_eq!(refused.code, "InvalidArgsException", "the serial push checks keys the same way");
        assert!(refused.message.contains("2048"), "{refused:?}");
        let rsa = rsa_key(&world, 2048);
        assert!(push(rsa.clone()).await.unwrap().success());
        assert!(serial(rsa).await.unwrap().success());
        assert!(world.lab.state().pushed_keys().iter().all(|k| !k.key.contains("ecdsa")));
    })
}

/// The `active-keys` blob IMDS serves for `user` on web-1.
pub(super) fn active_keys(world: &World, user: &str) -> String {
    let imds = world.lab.instance(WEB).imds_url.trim_start_matches("http://").to_string();
    let (status, _, token) = super::http(
        &imds,
        &format!("PUT /latest/api/token HTTP/1.1\r\nHost: {imds}\r\nX-aws-ec2-metadata-token-ttl-seconds: 5\r\n"),
        b"",
    );
    assert_eq!(status, 200, "{token}");
    let path = format!("/latest/meta-data/managed-ssh-keys/active-keys/{user}/");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {imds}\r\nX-aws-ec2-metadata-token: {token}\r\n");
    let (status, _, blob) = super::http(&imds, &head, b"");
    assert_eq!(status, 200, "{blob}");
    blob
}

// See: issue 18
#[test]
fn issue_18_5_pushed_keys_are_trimmed_so_no_empty_line_reaches_the_blob() {
    let world = World::new();
    block_on(async {
        let eic = aws_sdk_ec2instanceconnect::Client::new(&sdk(&world.lab).await);
        let out = eic
            .send_ssh_public_key()
            .instance_id(WEB)
            .instance_os_user("ec2-user")
            .ssh_public_key(format!("{KEY}\n"))
            .send()
            .await
            .unwrap();
        assert!(out.success());
        let blob = active_keys(&world, "ec2-user");
        let lines: Vec<&str> = blob.lines().collect();
        let at = lines.iter().position(|l| *l == KEY).unwrap_or_else(|| panic!("no key line in {blob:?}"));
        // eic_parse_authorized_keys reads the signature from the lines after the key up to the
        // first empty line: that must be a base64 line, not the empty line of a trailing newline.
        assert!(!lines[at + 1].is_empty(), "{blob:?}");
        assert!(blob.ends_with("\n\n") && !blob.contains("\n\n\n"), "{blob:?}");
    })
}
