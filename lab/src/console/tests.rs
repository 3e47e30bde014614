//! The console text's formats, checked against `ssh-keygen -l` on the same keys. No lab: the
//! keys come from `ssh-keygen` in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::block::{cut_lines, lines, syslog_time};
use super::*;
use crate::inventory::Inventory;

/// 2026-11-20T09:00:09Z, the block time of an instance launched at 09:00:00.
const AT: u64 = 1_795_165_209;

/// A temp dir removed on drop, with ECDSA and Ed25519 keys made by `ssh-keygen`.
struct Keys {
    dir: PathBuf,
    files: Vec<PathBuf>,
    lines: Vec<String>,
}

impl Keys {
    fn new(comment: &str) -> Keys {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ec2-lab-console-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        let mut lines = Vec::new();
        for kind in ["ecdsa", "ed25519"] {
            let file = dir.join(format!("ssh_host_{kind}_key"));
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
                .arg(&file)
                .output()
                .expect("ssh-keygen (openssh-client)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            lines.push(std::fs::read_to_string(file.with_extension("pub")).unwrap().trim().to_string());
            files.push(file);
        }
        Keys { dir, files, lines }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ssh-keygen -l [-E md5] -f <file>.pub`, trimmed.
pub(crate) fn keygen_l(file: &Path, md5: bool) -> String {
    let mut cmd = Command::new("ssh-keygen");
    if md5 {
        cmd.args(["-E", "md5"]);
    }
    let out = cmd.arg("-l").arg("-f").arg(file.with_extension("pub")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn current_block_is_cloud_init_with_ssh_keygen_lines() {
    let keys = Keys::new("root@ip-127-0-1-10.eu-west-1.compute.internal");
    let got = lines(BlockStyle::CloudInit, &keys.lines, AT);
    let prefix = "<14>Nov 20 09:00:09 cloud-init: ";
    let mut want = vec![format!("{prefix}{}", "#".repeat(61)), format!("{prefix}{BEGIN_FINGERPRINTS}")];
    want.extend(keys.files.iter().map(|f| format!("{prefix}{}", keygen_l(f, false))));
    want.extend([format!("{prefix}{END_FINGERPRINTS}"), format!("{prefix}{}", "#".repeat(61)), BEGIN_KEYS.into()]);
    want.extend(keys.lines.iter().cloned());
    want.push(END_KEYS.into());
    assert_eq!(got, want);
    assert!(got[2].ends_with(" root@ip-127-0-1-10.eu-west-1.compute.internal (ECDSA)"), "{got:#?}");
    assert!(got[3].starts_with(&format!("{prefix}256 SHA256:")) && got[3].ends_with("(ED25519)"), "{got:#?}");
    assert_eq!(host_key_block(BlockStyle::CloudInit, &keys.lines, AT), format!("{}\r\n", want.join("\r\n")));
    // Current cloud-init prints no headers without keys.
    assert!(lines(BlockStyle::CloudInit, &[], AT).is_empty());
}

#[test]
fn legacy_block_is_ec2_tagged_with_md5_hex() {
    let keys = Keys::new("root@ip-127-0-1-10.eu-west-1.compute.internal");
    let got = lines(BlockStyle::Legacy, &keys.lines, AT);
    assert_eq!(got[0], "ec2: ");
    assert_eq!(got[1], format!("ec2: {HASH_LINE}"));
    assert_eq!(got[2], format!("ec2: {BEGIN_FINGERPRINTS}"));
    for (line, file) in got[3..5].iter().zip(&keys.files) {
        // `ssh-keygen -E md5` says "256 MD5:aa:…:ff comment (TYPE)"; OpenSSH < 6.8 said
        // "256 aa:…:ff  comment (TYPE)".
        let modern = keygen_l(file, true);
        let (bits, rest) = modern.split_once(" MD5:").unwrap();
        let (hex, tail) = rest.split_once(' ').unwrap();
        assert_eq!(*line, format!("ec2: {bits} {hex}  {tail}"));
        assert_eq!(hex.len(), 47, "{hex}");
    }
    assert_eq!(got[5..8], [format!("ec2: {END_FINGERPRINTS}"), format!("ec2: {HASH_LINE}"), BEGIN_KEYS.to_string()]);
    assert_eq!(got[8..10], keys.lines[..]);
    assert_eq!(got[10], END_KEYS);
    // The old script printed its headers even without keys.
    assert_eq!(lines(BlockStyle::Legacy, &[], AT).len(), 7);
}

#[test]
fn cut_block_leaves_nothing_to_trust() {
    let keys = Keys::new("root@ip-127-0-1-10.eu-west-1.compute.internal");
    let banner = ["".to_string(), "Amazon Linux 2023".to_string(), "ip-127-0-1-10 login: ".to_string()];
    let got = cut_lines(&keys.lines, AT, &banner);
    let text = got.join("\r\n");
    assert!(!text.contains(BEGIN_FINGERPRINTS) && !text.contains(BEGIN_KEYS), "{text}");
    assert!(text.contains(END_FINGERPRINTS) && text.contains(END_KEYS), "{text}");
    assert!(text.contains("-----BEGIN SSH HO\x1bc"), "the marker is cut by a terminal reset: {text:?}");
    for f in &keys.files {
        let line = keygen_l(f, false);
        let fingerprint = line.split_whitespace().nth(1).unwrap();
        assert!(!text.contains(fingerprint), "a whole fingerprint survived: {fingerprint}");
    }
    for line in &got {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            assert!(KeyLine::parse(&pair.join(" ")).is_none(), "a whole key survived: {line}");
        }
    }
}

#[test]
fn syslog_time_pads_the_day_with_a_space() {
    assert_eq!(syslog_time(1_780_508_872), "Jun  3 17:47:52");
    assert_eq!(syslog_time(AT), "Nov 20 09:00:09");
}

/// One instance of each kind, plus Windows and a stopped one.
const KINDS: &str = r#"
[[instance]]
id = "i-0c0000000000000a1"
private_ip = "127.0.1.10"
launch_time = "2026-11-20T09:00:00.000Z"
key_name = "lab-admin"

[[instance]]
id = "i-0c0000000000000a2"
private_ip = "127.0.1.11"
console_keys = "legacy"

[[instance]]
id = "i-0c0000000000000a3"
private_ip = "127.0.1.12"
console_keys = "none"

[[instance]]
id = "i-0c0000000000000a4"
private_ip = "127.0.1.13"
console_keys = "tampered"

[[instance]]
id = "i-0c0000000000000a5"
private_ip = "127.0.1.14"
console_keys = "mismatch"

[[instance]]
id = "i-0c0000000000000a6"
private_ip = "127.0.1.15"
console_keys = "cut"

[[instance]]
id = "i-0c0000000000000a7"
private_ip = "127.0.1.16"
platform = "windows"

[[instance]]
id = "i-0c0000000000000a8"
private_ip = "127.0.1.17"
state = "stopped"

[[key_pair]]
name = "lab-admin"
public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin"
"#;

#[test]
fn each_kind_of_console() {
    let inv = Inventory::from_toml(KINDS).unwrap();
    let own = Keys::new("root@ip-127-0-1-10.eu-west-1.compute.internal");
    let foreign = Keys::new("root@ip-127-0-1-10.eu-west-1.compute.internal");
    let text_of = |n: usize| {
        let inst = &inv.instances[n];
        let authorized_key = inst.key_name.as_deref().and_then(|k| inv.key_pair(k)).map(|k| k.public_key.as_str());
        let c = Console {
            instance: inst,
            region: "eu-west-1",
            host_keys: &own.lines,
            foreign_keys: &foreign.lines[1..],
            authorized_key,
        };
        text(&c)
    };
    let count = |text: &str, what: &str| text.matches(what).count();
    for n in 0..inv.instances.len() {
        let t = text_of(n);
        assert!(t.ends_with("\r\n") && !t.replace("\r\n", "").contains('\n'), "every line ends in CRLF");
    }

    let t = text_of(0);
    assert_eq!(inv.instances[0].console_keys(), ConsoleKeys::CloudInit);
    assert!(t.starts_with("[    0.000000] Linux version 6.1."), "{t}");
    assert!(t.contains(&host_key_block(BlockStyle::CloudInit, &own.lines, AT)), "{t}");
    assert!(t.contains("Authorized keys from /home/ec2-user/.ssh/authorized_keys for user ec2-user"), "{t}");
    assert!(t.contains("| lab-admin |") && t.ends_with("ip-127-0-1-10 login: \r\n"), "{t}");

    let t = text_of(1);
    assert_eq!(count(&t, BEGIN_FINGERPRINTS), 1);
    assert!(t.contains("\r\nec2: \r\nec2: #####") && t.contains("Cloud-init v. 19.3"), "{t}");
    assert!(t.contains(&format!("{}\r\n{}\r\n", own.lines[0], own.lines[1])), "{t}");

    let t = text_of(2);
    assert!(!t.contains("SSH HOST KEY") && t.contains("login: "), "{t}");

    let t = text_of(3);
    assert_eq!((count(&t, BEGIN_FINGERPRINTS), count(&t, BEGIN_KEYS)), (2, 2), "{t}");
    let (first, second) = t.split_at(t.rfind(HASH_LINE).unwrap());
    assert!(first.contains(&own.lines[1]) && !first.contains(&foreign.lines[1]), "{t}");
    assert!(second.contains(&foreign.lines[1]) && !second.contains(&own.lines[1]), "{t}");

    let t = text_of(4);
    assert_eq!(count(&t, BEGIN_KEYS), 1);
    assert!(t.contains(&foreign.lines[1]) && !t.contains(&own.lines[0]) && !t.contains(&own.lines[1]), "{t}");

    let t = text_of(5);
    assert!(!t.contains(BEGIN_FINGERPRINTS) && !t.contains(BEGIN_KEYS) && t.contains(END_KEYS), "{t}");

    let t = text_of(6);
    assert!(t.contains("Windows is Ready to use") && !t.contains("SSH HOST KEY"), "{t}");
    assert_eq!(inv.instances[6].console_keys(), ConsoleKeys::Absent);

    assert_eq!(inv.instances[7].console_keys(), ConsoleKeys::Absent);
    assert!(!text_of(7).contains("SSH HOST KEY"));
}
