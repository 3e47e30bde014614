//! DescribeKeyPairs: the fingerprint rules AWS documents, checked with `ssh-keygen` and
//! `openssl`, the public key material, filters and the not-found error.

use std::process::{Command, Stdio};

use super::element;
use crate::inventory::{Inventory, KeyPairSpec, LAB_ADMIN_PUBLIC_KEY};
use crate::test_world::{World, ec2};

/// A lab with the inventory's `lab-admin` and an RSA key pair made now with `ssh-keygen`;
/// returns the RSA public key file too.
fn world_with_rsa() -> (World, std::path::PathBuf) {
    let mut inventory = Inventory::from_toml(super::INVENTORY).unwrap();
    let dir = std::env::temp_dir().join(format!("ec2-lab-rsa-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ops");
    let _ = std::fs::remove_file(&file);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "ops@laptop", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public_key = std::fs::read_to_string(file.with_extension("pub")).unwrap();
    inventory.key_pairs.push(KeyPairSpec {
        name: "ops-rsa".into(),
        public_key: public_key.trim().into(),
        id: Some("key-0123456789abcdef0".into()),
        fingerprint: None,
        create_time: "2026-01-02T03:04:05.000Z".into(),
    });
    let w = crate::test_world::start("key-pairs", inventory);
    let kept = w.dir.join("ops.pub");
    std::fs::copy(file.with_extension("pub"), &kept).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (w, kept)
}

fn items(xml: &str) -> Vec<&str> {
    xml.split("<keySet>").nth(1).unwrap_or_default().split("<item>").skip(1).collect()
}

/// `openssl md5 -c` of the DER public key `ssh-keygen -e -m PKCS8` exports.
fn openssl_md5_of_der(public_key_file: &std::path::Path) -> String {
    let pem = Command::new("ssh-keygen").args(["-e", "-m", "PKCS8", "-f"]).arg(public_key_file).output().unwrap();
    assert!(pem.status.success());
    let mut der = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(&mut der.stdin.take().unwrap(), &pem.stdout).unwrap();
    let der = der.wait_with_output().unwrap().stdout;
    let mut md5 =
        Command::new("openssl").args(["md5", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut md5.stdin.take().unwrap(), &der).unwrap();
    let out = String::from_utf8(md5.wait_with_output().unwrap().stdout).unwrap();
    out.rsplit("= ").next().unwrap().trim().to_string()
}

#[test]
fn fingerprints_follow_the_documented_rules() {
    let (w, rsa_file) = world_with_rsa();
    let (status, xml) = ec2(&w.lab, "Action=DescribeKeyPairs");
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<DescribeKeyPairsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"), "{xml}");
    let items = items(&xml);
    assert_eq!(items.len(), 2, "{xml}");

    // Ed25519: base64 SHA-256 of the key blob, padded with `=` (ssh-keygen prints it unpadded).
    let admin = items[0];
    assert_eq!(element(admin, "keyName"), Some("lab-admin"));
    assert_eq!(element(admin, "keyType"), Some("ed25519"));
    let id = element(admin, "keyPairId").unwrap();
    assert!(id.starts_with("key-") && id.len() == 21 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let pub_file = w.dir.join("lab-admin.pub");
    std::fs::write(&pub_file, format!("{LAB_ADMIN_PUBLIC_KEY}\n")).unwrap();
    let sha256 = crate::console::tests::keygen_l(&pub_file, false).split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(element(admin, "keyFingerprint").map(str::to_string), Some(format!("{}=", &sha256["SHA256:".len()..])));
    assert!(!admin.contains("<publicKey>"), "only with IncludePublicKey");

    // Imported RSA: MD5 of the DER public key, as `openssl md5 -c` prints it.
    let rsa = items[1];
    assert_eq!(element(rsa, "keyPairId"), Some("key-0123456789abcdef0"));
    assert_eq!(element(rsa, "keyType"), Some("rsa"));
    let fingerprint = element(rsa, "keyFingerprint").unwrap();
    assert_eq!(fingerprint, openssl_md5_of_der(&rsa_file));
    assert_eq!(fingerprint.len(), 47, "{fingerprint}");
    assert_eq!(element(rsa, "createTime"), Some("2026-01-02T03:04:05.000Z"));

    let (_, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&KeyName.1=lab-admin&IncludePublicKey=true");
    let items = self::items(&xml);
    assert_eq!(items.len(), 1);
    let material = LAB_ADMIN_PUBLIC_KEY.to_string();
    assert_eq!(element(items[0], "publicKey"), Some(material.as_str()), "type, base64 and the key pair's name");

    let (_, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&KeyName.1=ops-rsa&IncludePublicKey=true");
    let base64 = std::fs::read_to_string(&rsa_file).unwrap().split_whitespace().nth(1).unwrap().to_string();
    let material = format!("ssh-rsa {base64} ops-rsa");
    assert_eq!(element(&xml, "publicKey"), Some(material.as_str()), "the comment is the key pair's name");

    let (_, xml) =
        ec2(&w.lab, &format!("Action=DescribeKeyPairs&Filter.1.Name=fingerprint&Filter.1.Value.1={fingerprint}"));
    assert_eq!(self::items(&xml).len(), 1, "{xml}");
    let (_, xml) =
        ec2(&w.lab, "Action=DescribeKeyPairs&Filter.1.Name=key-name&Filter.1.Value.1=ops-*&Filter.1.Value.2=lab-admin");
    assert_eq!(self::items(&xml).len(), 2, "{xml}");
    let (_, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&KeyPairId.1=key-0123456789abcdef0");
    assert_eq!(self::items(&xml).len(), 1, "{xml}");
}

#[test]
fn unknown_key_pairs_are_not_found() {
    let w = super::world();
    let (status, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&KeyName.1=lab-admin&KeyName.2=gone");
    assert_eq!(status, 400);
    assert!(
        xml.contains(
            "<Code>InvalidKeyPair.NotFound</Code><Message>The key pair &apos;gone&apos; does not exist</Message>"
        ),
        "{xml}"
    );
    let (status, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&KeyPairId.1=key-00000000000000000");
    assert!(status == 400 && xml.contains("InvalidKeyPair.NotFound"), "{xml}");
    let (status, xml) = ec2(&w.lab, "Action=DescribeKeyPairs&Filter.1.Name=key-name&Filter.1.Value.1=gone");
    assert!(status == 200 && xml.contains("<keySet></keySet>"), "a filter that matches nothing is no error: {xml}");
}
