use std::process::Command;

use super::*;

/// A public key line from `ssh-keygen ARGS` (a fresh key).
fn keygen(args: &[&str], comment: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let out = Command::new("ssh-keygen").args(args).args(["-q", "-N", "", "-C", comment, "-f"]).arg(&path).output();
    assert!(out.unwrap().status.success(), "ssh-keygen {args:?}");
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string()
}

fn lines(lines: &[&str]) -> Vec<(String, String)> {
    lines.iter().map(|l| ("/home/ec2-user/.ssh/authorized_keys".to_string(), l.to_string())).collect()
}

#[test]
fn options_are_skipped_duplicates_and_junk_dropped_and_weak_keys_refused() {
    let ed = keygen(&["-t", "ed25519"], "ami owner");
    let weak = keygen(&["-t", "rsa", "-b", "1024"], "old");
    let with_options = format!("command=\"echo two words\",no-pty {ed}");
    let found = offered(&lines(&[&with_options, &ed, "not a key line", &weak]));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].key_type, "ssh-ed25519");
    assert_eq!(found[0].comment, "ami owner");
    assert!(found[0].verdict.is_ok());
    assert!(found[0].ssh_fingerprint.starts_with("SHA256:") && found[0].ssh_fingerprint.len() == 50);
    assert_eq!(found[1].verdict, Err(KeyRefused::RsaTooShort { bits: 1024 }));
    assert!(found[1].describe().contains("refused, an RSA key of 1024 bits is too weak"), "{}", found[1].describe());
    // The only acceptable key is chosen; the weak one cannot be asked for.
    let chosen = choose(&found, None, "web-1", "cmd").unwrap();
    assert_eq!(chosen.ssh_fingerprint, found[0].ssh_fingerprint);
    let refused = choose(&found, Some(&found[1].ssh_fingerprint), "web-1", "cmd").unwrap_err();
    assert!(matches!(refused, ChoiceError::Refused { .. }), "{refused}");
    assert!(matches!(choose(&found[1..], None, "web-1", "cmd"), Err(ChoiceError::NoneAcceptable { .. })));
    assert!(matches!(choose(&[], None, "web-1", "cmd"), Err(ChoiceError::NoKeys { .. })));
}

#[test]
fn several_keys_need_a_fingerprint_in_either_form() {
    let (a, b) = (keygen(&["-t", "ed25519"], "a"), keygen(&["-t", "rsa", "-b", "2048"], "b"));
    let found = offered(&lines(&[&a, &b]));
    let err = choose(&found, None, "web-1's authorized_keys", "ec2-broker key import k --from web-1").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("holds 2 keys"), "{text}");
    assert!(text.contains(&found[0].ssh_fingerprint) && text.contains(&found[1].ssh_fingerprint), "{text}");
    assert!(text.ends_with("choose one: ec2-broker key import k --from web-1 --fingerprint FP"), "{text}");
    let rsa_ec2 = found[1].ec2_fingerprint().unwrap();
    assert!(rsa_ec2.contains(':'), "MD5 for RSA: {rsa_ec2}");
    assert_eq!(choose(&found, Some(&rsa_ec2), "w", "c").unwrap().comment, "b");
    let padded = format!("{}=", found[0].ssh_fingerprint);
    assert_eq!(choose(&found, Some(&padded), "w", "c").unwrap().comment, "a");
    assert!(matches!(choose(&found, Some("SHA256:nope"), "w", "c"), Err(ChoiceError::NoMatch { .. })));
}
