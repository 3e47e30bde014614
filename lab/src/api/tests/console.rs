//! GetConsoleOutput's host key blocks against the keys each instance's sshd really has.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::{CUT, LEGACY, MISMATCH, OLD_WEB, REBOOTED, TAMPERED, WEB, WINDOWS, console_text, world};
use crate::console::tests::keygen_l;
use crate::console::{BEGIN_FINGERPRINTS, BEGIN_KEYS, END_KEYS};
use crate::inventory::LAB_ADMIN_PRIVATE_KEY;

#[test]
fn cloud_init_console_prints_the_sshd_host_keys() {
    let w = world();
    let text = console_text(&w, WEB, false);
    let sshd = &w.lab.instance(WEB).sshd;
    assert_eq!(sshd.host_key_files.len(), 2, "ECDSA and Ed25519");
    let prefix = "<14>Nov 20 09:00:09 cloud-init: ";
    let mut block = format!("{prefix}{}\r\n{prefix}{BEGIN_FINGERPRINTS}\r\n", "#".repeat(61));
    for file in &sshd.host_key_files {
        block.push_str(&format!("{prefix}{}\r\n", keygen_l(file, false)));
    }
    assert!(text.contains(&block), "no block with `ssh-keygen -l` of the sshd keys:\n{text}");
    let keys = format!("{BEGIN_KEYS}\r\n{}\r\n{END_KEYS}\r\n", sshd.host_public_keys.join("\r\n"));
    assert!(text.contains(&keys), "{text}");
    assert!(text.contains(&sshd.host_public_key), "the Ed25519 key SshdFiles names is among them");
    assert_eq!(text.matches(BEGIN_FINGERPRINTS).count(), 1);
    assert_eq!(console_text(&w, WEB, true), text, "Latest=true returns the same text");
    assert_eq!(w.lab.state().console_output(WEB).as_deref(), Some(text.as_str()));
    assert_eq!(w.lab.state().host_keys(WEB), sshd.host_public_keys);

    // What the sshd presents over SSH is what the console printed.
    let port = w.lab.ssh_port(WEB).to_string();
    let out = Command::new("ssh-keyscan").args(["-p", &port, "-t", "ecdsa,ed25519", "127.0.7.10"]).output().unwrap();
    let scanned = String::from_utf8_lossy(&out.stdout);
    for key in &sshd.host_public_keys {
        let blob = key.split_whitespace().nth(1).unwrap();
        assert!(scanned.contains(blob), "ssh-keyscan did not see {key}:\n{scanned}");
    }
}

#[test]
fn known_hosts_from_the_console_lets_ssh_in_with_the_launch_key() {
    let w = world();
    let text = console_text(&w, WEB, false);
    let block = text.split(&format!("{BEGIN_KEYS}\r\n")).nth(1).unwrap().split(END_KEYS).next().unwrap();
    let port = w.lab.ssh_port(WEB);
    let known_hosts = w.dir.join("known_hosts_from_console");
    let entries: String = (block.lines().map(str::trim).filter(|l| !l.is_empty()))
        .map(|l| format!("[127.0.7.10]:{port} {}\n", l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")))
        .collect();
    std::fs::write(&known_hosts, entries).unwrap();
    let key = w.dir.join("lab-admin");
    std::fs::write(&key, LAB_ADMIN_PRIVATE_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for algorithms in ["ssh-ed25519", "ecdsa-sha2-nistp256"] {
        let out = Command::new("ssh")
            .arg("-i")
            .arg(&key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "ConnectTimeout=20",
                "-F",
                "/dev/null",
            ])
            .args(["-o", &format!("HostKeyAlgorithms={algorithms}"), "-p", &port.to_string()])
            .args(["ec2-user@127.0.7.10", "echo in"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "in\n",
            "{algorithms}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            w.lab.sshd_log(WEB)
        );
    }
}

#[test]
fn legacy_console_prints_md5_hex_of_the_sshd_keys() {
    let w = world();
    let text = console_text(&w, LEGACY, false);
    let sshd = &w.lab.instance(LEGACY).sshd;
    assert!(
        text.contains("\r\nec2: \r\nec2: #############################################################\r\n"),
        "{text}"
    );
    for file in &sshd.host_key_files {
        let modern = keygen_l(file, true); // "256 MD5:aa:…:ff root@… (ECDSA)"
        let (bits, rest) = modern.split_once(" MD5:").unwrap();
        let (hex, tail) = rest.split_once(' ').unwrap();
        let old = format!("{bits} {hex}  {tail}");
        assert!(text.contains(&format!("\r\nec2: {old}\r\n")), "no `ec2: {old}` line:\n{text}");
    }
    assert!(text.contains(&sshd.host_public_keys.join("\r\n")), "{text}");
    assert!(!text.contains("<14>"), "no current-style block: {text}");
}

#[test]
fn tampered_mismatch_cut_rebooted_and_windows_consoles() {
    let w = world();
    let state = w.lab.state();

    let text = console_text(&w, TAMPERED, false);
    let own = &w.lab.instance(TAMPERED).sshd.host_public_keys;
    let forged = state.foreign_host_keys(TAMPERED);
    assert_eq!(forged.len(), 2, "a forged key of each type: {forged:?}");
    assert!(forged.iter().all(|k| !own.contains(k)));
    let second = text.rfind(BEGIN_FINGERPRINTS).unwrap();
    let (first, later) = text.split_at(second);
    assert_eq!(first.matches(BEGIN_FINGERPRINTS).count(), 1);
    assert!(own.iter().all(|k| first.contains(k)) && forged.iter().all(|k| !first.contains(k)), "{text}");
    assert!(forged.iter().all(|k| later.contains(k)) && own.iter().all(|k| !later.contains(k)), "{text}");
    assert!(first.contains(" login: \r\n"), "the forged block comes after boot: {text}");

    let text = console_text(&w, MISMATCH, false);
    let own = &w.lab.instance(MISMATCH).sshd.host_public_keys;
    assert_eq!(text.matches(BEGIN_KEYS).count(), 1);
    let shown = state.foreign_host_keys(MISMATCH);
    assert!(shown.iter().all(|k| text.contains(k)) && own.iter().all(|k| !text.contains(k)), "{text}");
    assert_eq!(console_text(&w, MISMATCH, false), text, "the foreign keys are stable");

    let text = console_text(&w, CUT, false);
    assert!(!text.contains(BEGIN_FINGERPRINTS) && !text.contains(BEGIN_KEYS), "{text}");
    assert!(text.contains("\x1bc") && text.contains(END_KEYS), "{text:?}");
    for file in &w.lab.instance(CUT).sshd.host_key_files {
        let fingerprint = keygen_l(file, false).split_whitespace().nth(1).unwrap().to_string();
        assert!(!text.contains(&fingerprint), "{text}");
    }

    let text = console_text(&w, REBOOTED, false);
    assert!(!text.contains("SSH HOST KEY") && text.contains("ip-127-0-7-15 login: "), "{text}");
    let text = console_text(&w, WINDOWS, false);
    assert!(!text.contains("SSH HOST KEY") && text.contains("Windows is Ready to use"), "{text}");
}

#[test]
fn terminated_console_shows_stand_in_keys_of_its_own() {
    let w = world();
    let text = console_text(&w, OLD_WEB, false);
    let own = w.lab.state().host_keys(OLD_WEB);
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].starts_with("ssh-ed25519 ") && own[0].ends_with(" root@ip-127-0-7-10.eu-west-1.compute.internal"));
    assert!(text.contains(&format!("{BEGIN_KEYS}\r\n{}\r\n{END_KEYS}", own[0])), "{text}");
    assert!(text.contains("<14>Sep  1 12:00:09 cloud-init: "), "logged at its own first boot: {text}");
    let web = &w.lab.instance(WEB).sshd.host_public_keys;
    assert!(!web.contains(&own[0]), "the recycled address's new instance has other keys");
    assert_eq!(console_text(&w, OLD_WEB, false), text);
    // Derived from the seed and the id: the same in every lab.
    let other = crate::state::State::new(crate::Inventory::from_toml(super::INVENTORY).unwrap());
    assert_eq!(other.host_keys(OLD_WEB), own);
}
