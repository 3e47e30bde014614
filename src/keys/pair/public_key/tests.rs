use super::*;

/// An SSH blob of wire strings.
fn blob(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| (p.len() as u32).to_be_bytes().into_iter().chain(p.iter().copied())).collect()
}

fn rsa_line(bits: usize) -> String {
    let mut n = vec![0u8, 0xc1];
    n.extend(vec![0x11; bits / 8 - 1]);
    format!("ssh-rsa {} me@host\n", Base64::encode_string(&blob(&[b"ssh-rsa", &[1, 0, 1], &n])))
}

#[test]
fn ed25519_lines_and_ssh2_blocks_are_read_and_fingerprinted_as_ec2_shows_them() {
    // The lab's lab-admin key; ssh-keygen -l prints SHA256:LLg0… unpadded.
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin";
    let key = ImportableKey::parse(format!("# mine\n{line}\n").as_bytes()).unwrap();
    assert_eq!(key.kind(), KeyKind::Ed25519);
    assert_eq!(key.material(), line.as_bytes(), "only the key line goes to EC2");
    let ec2 = key.ec2_fingerprint();
    assert!(ec2.ends_with('=') && ec2.len() == 44, "{ec2}");
    assert_eq!(key.ssh_fingerprint(), format!("SHA256:{}", ec2.trim_end_matches('=')));
    assert!(key.same_as_line(line));
    let data = line.split_whitespace().nth(1).unwrap();
    let ssh2 = format!(
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"a long \\\n comment\"\n{}\n{}\n---- END SSH2 PUBLIC KEY ----\n",
        &data[..40],
        &data[40..]
    );
    assert_eq!(ImportableKey::parse(ssh2.as_bytes()).unwrap().ec2_fingerprint(), ec2);
}

#[test]
fn rsa_keys_are_read_from_openssh_der_and_pem_alike() {
    let line = rsa_line(2048);
    let key = ImportableKey::parse(line.as_bytes()).unwrap();
    assert_eq!(key.kind(), KeyKind::Rsa { bits: 2048 });
    let spki = rsa_spki(&key.blob);
    let fp = key.ec2_fingerprint();
    assert_eq!(fp.len(), 47, "16 colon-separated bytes: {fp}");
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", Base64::encode_string(&spki));
    for form in [spki.clone(), pem.into_bytes(), Base64::encode_string(&spki).into_bytes()] {
        let other = ImportableKey::parse(&form).unwrap();
        assert_eq!(other.ec2_fingerprint(), fp);
        assert_eq!(other.material(), &form[..], "DER and PEM go to EC2 as given");
    }
}

#[test]
fn weak_and_foreign_keys_are_refused_with_what_to_do() {
    for (text, refused) in [
        (rsa_line(1024), KeyRefused::RsaTooShort { bits: 1024 }),
        (rsa_line(8192), KeyRefused::RsaTooLong { bits: 8192 }),
        (format!("ssh-dss {}", Base64::encode_string(&blob(&[b"ssh-dss", &[1], &[2], &[3], &[4]]))), KeyRefused::Dsa),
        (
            format!(
                "ecdsa-sha2-nistp256 {}",
                Base64::encode_string(&blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4; 65]]))
            ),
            KeyRefused::UnsupportedType { kind: "ecdsa-sha2-nistp256".into() },
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n".into(),
            KeyRefused::PrivateKey,
        ),
    ] {
        let got = ImportableKey::parse(text.as_bytes()).unwrap_err();
        assert_eq!(got, refused);
        let words = got.to_string();
        if refused != KeyRefused::PrivateKey {
            assert!(words.contains("ec2-broker key new"), "{words}");
        }
    }
    let mislabelled = format!("ssh-rsa {}", Base64::encode_string(&blob(&[b"ssh-ed25519", &[7; 32]])));
    assert!(matches!(ImportableKey::parse(mislabelled.as_bytes()), Err(KeyRefused::Unreadable { .. })));
    assert!(matches!(ImportableKey::parse(b""), Err(KeyRefused::Unreadable { .. })));
    assert!(matches!(ImportableKey::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]), Err(KeyRefused::Unreadable { .. })));
}
