//! `known-hosts audit`: the parser and matcher against OpenSSH's own `ssh-keygen -F` (hashed
//! entries included), and the audit's findings as JSON, offline and against the lab.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ec2_broker::known_hosts::file::KnownHostsFile;
use ec2_broker::known_hosts::pattern;
use serde_json::Value;

use crate::harness::{World, broker};

const T: Duration = Duration::from_secs(60);
/// A 1024-bit DSA public key (a weak host key).
const DSA: &str = "AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPhUGIqqDqR1qT4dTC4YRWgBRNKbcbS3GdJ0fd/BPG9FuZB1zEOvtXdoh4XtyD3yIn62C4p7Xlc8Ybyi+FfpRE/OlyHG+ue1vKDPn/pjdq6dLf0Q5IxRtsCvCAkVoRHD6XWmA7Jr7SJCExaJB6H6VmNOHLX4TsVDaI1z9dzsNrDZ";

fn keygen_ed25519(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = fs::read_to_string(path.with_extension("pub")).unwrap();
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Whether `ssh-keygen -F QUERY -f FILE` finds an entry.
fn keygen_finds(file: &Path, query: &str) -> bool {
    let out = Command::new("ssh-keygen").args(["-F", query, "-f"]).arg(file).output().unwrap();
    out.status.success() && !out.stdout.is_empty()
}

#[test]
fn matching_agrees_with_ssh_keygen_including_hashed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (keygen_ed25519(dir.path(), "a"), keygen_ed25519(dir.path(), "b"));
    let text = [
        format!("web-1,10.0.1.5 {a}"),
        format!("[bastion.example.com]:2222 {a}"),
        format!("*.example.com,!bad.example.com {b}"),
        format!("db-?.corp {b}"),
        format!("UPPER.example.org {a}"),
        format!("@revoked revoked.example.net {a}"),
        format!("i-0a1b2c3d4e5f60718 {b}"),
    ]
    .join("\n")
        + "\n";
    let plain = dir.path().join("plain");
    let hashed = dir.path().join("hashed");
    fs::write(&plain, &text).unwrap();
    fs::write(&hashed, &text).unwrap();
    let out = Command::new("ssh-keygen").args(["-H", "-f"]).arg(&hashed).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hashed_text = fs::read_to_string(&hashed).unwrap();
    assert!(hashed_text.matches("|1|").count() >= 5, "ssh-keygen -H hashed the plain names:\n{hashed_text}");

    let queries = [
        "web-1",
        "WEB-1",
        "10.0.1.5",
        "10.0.1.6",
        "[bastion.example.com]:2222",
        "bastion.example.com",
        "ok.example.com",
        "bad.example.com",
        "db-1.corp",
        "db-10.corp",
        "upper.example.org",
        "revoked.example.net",
        "i-0a1b2c3d4e5f60718",
        "[web-1]:2200",
    ];
    for path in [&plain, &hashed] {
        let file = KnownHostsFile::parse(&fs::read_to_string(path).unwrap());
        assert!(file.entries().count() >= 7);
        for q in queries {
            // ssh lowercases the host name before it looks it up; ssh-keygen -F hashes the query
            // as typed, so an upper-case query is not one ssh would ever make on a hashed file.
            if path == &hashed && q.chars().any(|c| c.is_ascii_uppercase()) {
                continue;
            }
            let (host, port) = match q.strip_prefix('[').and_then(|r| r.split_once("]:")) {
                Some((h, p)) => (h, p.parse().unwrap()),
                None => (q, 22),
            };
            let ours = file.entries().any(|(_, e)| pattern::matches(&e.hosts, host, port));
            assert_eq!(ours, keygen_finds(path, q), "{q} in {}", path.display());
        }
    }
}

#[test]
fn offline_audit_reports_each_file_finding_as_json() {
    let world = World::new();
    let (a, b) = (keygen_ed25519(world.dir.path(), "a"), keygen_ed25519(world.dir.path(), "b"));
    let file = world.path("known_hosts");
    let text = [
        "# a comment".to_string(),
        format!("web-1,10.0.1.5 {a}"),
        format!("web-1 {a}"),
        format!("10.0.1.5 {b}"),
        "web-2 ssh-ed25519".to_string(),
        format!("serial-console.ec2-instance-connect.eu-west-1.aws {a}"),
        format!("old-nas ssh-dss {DSA}"),
        String::new(),
    ]
    .join("\n");
    fs::write(&file, text).unwrap();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline", "--json"]).arg(&file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "findings exit 1: {}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    // Fingerprints as ssh-keygen prints them for the same keys.
    let fp = |k: &str| {
        let path = world.path("fp.pub");
        fs::write(&path, format!("{k}\n")).unwrap();
        let out = Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    let name = file.display().to_string();
    let expected = serde_json::json!({
        "schema": "ec2-broker.known-hosts-audit/1",
        "files": [name],
        "entries": 5,
        "findings": [
            {"file": name, "line": 3, "host": "web-1", "key_type": "ssh-ed25519", "fingerprint": fp(&a),
             "kind": "duplicate", "severity": "warning", "other_line": 2,
             "detail": "web-1 has the same ssh-ed25519 key on line 2",
             "action": "delete this line"},
            {"file": name, "line": 4, "host": "10.0.1.5", "key_type": "ssh-ed25519", "fingerprint": fp(&b),
             "kind": "conflict", "severity": "serious", "other_line": 2,
             "detail": "10.0.1.5 has a different ssh-ed25519 key on line 2: ssh accepts either",
             "action": "find out which key is right (known-hosts pin for EC2 instances) and delete the other line"},
            {"file": name, "line": 5, "host": "", "key_type": "", "fingerprint": "", "kind": "malformed",
             "severity": "warning", "detail": "no key after the host names (expected: HOSTS KEYTYPE BASE64 [COMMENT])",
             "action": "fix or delete the line"},
            {"file": name, "line": 6, "host": "serial-console.ec2-instance-connect.eu-west-1.aws",
             "key_type": "ssh-ed25519", "fingerprint": fp(&a), "kind": "serial-endpoint-mismatch", "severity": "serious",
             "detail": format!("serial-console.ec2-instance-connect.eu-west-1.aws is the eu-west-1 serial console endpoint, whose published key is SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E; this entry holds {}", fp(&a)),
             "action": "delete the line: it was learned from something that is not AWS's endpoint"},
            {"file": name, "line": 7, "host": "old-nas", "key_type": "ssh-dss", "fingerprint": fp(&format!("ssh-dss {DSA}")),
             "kind": "weak-key", "severity": "warning",
             "detail": "DSA host key: OpenSSH no longer accepts DSA by default, and it is weak",
             "action": "replace the host key (ssh-keygen -t ed25519 on the host) and re-learn it"},
        ]
    });
    assert_eq!(report, expected, "{}", serde_json::to_string_pretty(&report).unwrap());
    crate::output::check_documented(&report, "ec2-broker.known-hosts-audit/1");

    // --fix on a copy: a backup, only the stale lines and hosts gone, and ssh-keygen agrees.
    let copy = world.path("known_hosts.copy");
    fs::copy(&file, &copy).unwrap();
    let original = fs::read_to_string(&copy).unwrap();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline", "--fix"]).arg(&copy);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("3 line(s) removed, 1 line(s) narrowed"), "{}", out.stderr);
    let backups = backups_of(&copy);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), original);
    assert!(out.stderr.contains(&format!("the old file is {}", backups[0].display())), "{}", out.stderr);
    assert_eq!(
        fs::read_to_string(&copy).unwrap(),
        format!("# a comment\nweb-1 {a}\nweb-2 ssh-ed25519\nold-nas ssh-dss {DSA}\n")
    );
    assert!(keygen_finds(&copy, "web-1") && !keygen_finds(&copy, "10.0.1.5"));
    assert!(!keygen_finds(&copy, "serial-console.ec2-instance-connect.eu-west-1.aws"));

    // A clean file exits 0, a missing one 2.
    let clean = world.path("clean");
    fs::write(&clean, format!("web-1 {a}\n")).unwrap();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline"]).arg(&clean);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("1 entries in") && out.stdout.contains("no findings"), "{}", out.stdout);
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline"]).arg(world.path("missing"));
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert!(out.stderr.contains("reading"), "{}", out.stderr);
}

/// The backups `--fix` made beside `file` (which is not a link), oldest first.
fn backups_of(file: &Path) -> Vec<PathBuf> {
    let file = fs::canonicalize(file).unwrap();
    let prefix = format!("{}.ec2-broker-backup.", file.file_name().unwrap().to_string_lossy());
    let mut found: Vec<PathBuf> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// See: issue 14. A known_hosts kept in a dotfiles repository (a symbolic link), with CRLF
/// lines, a line that is not UTF-8, another owner and mode 0640. The old audit stopped at the
/// non-UTF-8 line ("stream did not contain valid UTF-8", exit 2); the old `--fix` replaced the
/// link with a plain root-owned file and turned CRLF into LF.
#[test]
fn issue_14_fix_writes_through_a_symlink_keeping_owner_mode_line_endings_and_odd_lines() {
    let world = World::new();
    let a = keygen_ed25519(world.dir.path(), "a");
    let dotfiles = world.path("dotfiles");
    fs::create_dir(&dotfiles).unwrap();
    let target = dotfiles.join("known_hosts");
    let mut original = format!("# mine\r\nweb-1,10.0.1.5 {a}\r\nweb-1 {a}\r\n").into_bytes();
    original.extend_from_slice(b"caf\xe9 ssh-ed25519 AAAA\n");
    original.extend_from_slice(format!("web-2 {a}\n").as_bytes());
    fs::write(&target, &original).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
    // The owner part needs root, which the integration tests run as.
    let as_root = fs::metadata(world.dir.path()).unwrap().uid() == 0;
    if as_root {
        std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    }
    let link = world.path("known_hosts.link");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline", "--json"]).arg(&link);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let found: Vec<(u64, &str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["kind"].as_str().unwrap(), f["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (3, "duplicate", "web-1 has the same ssh-ed25519 key on line 2"),
            (4, "malformed", "not UTF-8 text (byte 0xe9 at column 4)"),
        ],
        "{}",
        out.stdout
    );
    assert_eq!(report["entries"], 3, "the lines after the odd one are audited");

    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--offline", "--fix"]).arg(&link);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
    assert_eq!(fs::read_link(&link).unwrap(), target);
    let mut want = format!("# mine\r\nweb-1,10.0.1.5 {a}\r\n").into_bytes();
    want.extend_from_slice(b"caf\xe9 ssh-ed25519 AAAA\n");
    want.extend_from_slice(format!("web-2 {a}\n").as_bytes());
    assert_eq!(String::from_utf8_lossy(&fs::read(&target).unwrap()), String::from_utf8_lossy(&want));
    assert_eq!(fs::read(&target).unwrap(), want);
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640, "mode kept");

    let backups = backups_of(&target);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(fs::read(&backups[0]).unwrap(), original);
    let backup_meta = fs::metadata(&backups[0]).unwrap();
    assert_eq!(backup_meta.mode() & 0o7777, 0o640, "the backup has the same mode");
    if as_root {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner kept");
        assert_eq!((backup_meta.uid(), backup_meta.gid()), (65534, 65534), "the backup has the same owner");
    }
    assert_eq!(fs::read_dir(&dotfiles).unwrap().count(), 2, "the file and its backup, no temporary file");
}

/// Instances for each thing the console and the addresses can say.
const AUDIT_INVENTORY: &str = r#"
region = "eu-west-1"

[[instance]]
id = "i-0e1000000000000a1"
name = "kh-web"
private_ip = "127.0.6.10"

[[instance]]
id = "i-0e1000000000000a2"
name = "kh-legacy"
private_ip = "127.0.6.11"
console_keys = "legacy"

[[instance]]
id = "i-0e1000000000000a3"
name = "kh-rebuilt"
private_ip = "127.0.6.12"
console_keys = "mismatch"

[[instance]]
id = "i-0e1000000000000a4"
name = "kh-rebooted"
private_ip = "127.0.6.13"
console_keys = "none"

[[instance]]
id = "i-0e1000000000000a5"
name = "kh-tampered"
private_ip = "127.0.6.14"
console_keys = "tampered"

[[instance]]
id = "i-0e1000000000000a6"
name = "kh-new"
private_ip = "127.0.6.15"

[[instance]]
id = "i-0e1000000000000b6"
name = "kh-old"
state = "terminated"
private_ip = "127.0.6.15"

[[instance]]
id = "i-0e1000000000000b7"
name = "kh-gone"
state = "terminated"
private_ip = "127.0.6.16"
"#;

#[test]
fn audit_against_the_lab_checks_consoles_and_addresses() {
    let world = World::with(ec2_lab::Inventory::from_toml(AUDIT_INVENTORY).unwrap(), "");
    let state = world.lab.state();
    // The instance's real ed25519 host key (what ssh learned when it connected).
    let real = |id: &str| {
        let keys = state.host_keys(id);
        let line = keys.iter().find(|k| k.starts_with("ssh-ed25519 ")).unwrap_or_else(|| panic!("{id}: {keys:?}"));
        line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    };
    let stranger = keygen_ed25519(world.dir.path(), "stranger");
    let port = world.lab.ssh_port("i-0e1000000000000a1");
    let rows = [
        (format!("[127.0.6.10]:{port}"), real("i-0e1000000000000a1")),
        (format!("[127.0.6.11]:{port}"), real("i-0e1000000000000a2")),
        (format!("[127.0.6.12]:{port}"), real("i-0e1000000000000a3")),
        (format!("[127.0.6.13]:{port}"), real("i-0e1000000000000a4")),
        (format!("[127.0.6.14]:{port}"), real("i-0e1000000000000a5")),
        (format!("[127.0.6.15]:{port}"), stranger.clone()),
        ("127.0.6.16".to_string(), stranger.clone()),
        ("127.0.8.8".to_string(), stranger.clone()),
        ("i-0e1000000000000a1".to_string(), real("i-0e1000000000000a1")),
        ("i-0e1000000000000b7".to_string(), stranger.clone()),
        ("home.lan".to_string(), stranger.clone()),
    ];
    let text: String = rows.iter().map(|(h, k)| format!("{h} {k}\n")).collect();
    let file = world.path("known_hosts");
    fs::write(&file, text).unwrap();
    let calls_before = state.calls().len();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--json"]).arg(&file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    crate::output::check_documented(&report, "ec2-broker.known-hosts-audit/1");
    let got: Vec<(u64, String, String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("-").to_string();
            (f["line"].as_u64().unwrap(), s("kind"), s("severity"), s("instance"))
        })
        .collect();
    let row = |line: u64, kind: &str, severity: &str, instance: &str| {
        (line, kind.to_string(), severity.to_string(), instance.to_string())
    };
    assert_eq!(
        got,
        [
            row(1, "verified", "ok", "i-0e1000000000000a1"),
            row(2, "verified", "ok", "i-0e1000000000000a2"),
            row(3, "console-mismatch", "serious", "i-0e1000000000000a3"),
            row(4, "unknown", "info", "i-0e1000000000000a4"),
            row(5, "verified", "ok", "i-0e1000000000000a5"),
            row(6, "recycled", "serious", "i-0e1000000000000a6"),
            row(7, "terminated", "warning", "i-0e1000000000000b7"),
            row(8, "no-instance", "info", "-"),
            row(9, "verified", "ok", "i-0e1000000000000a1"),
            row(10, "terminated", "warning", "i-0e1000000000000b7"),
        ],
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let findings = report["findings"].as_array().unwrap();
    let foreign = state.foreign_host_keys("i-0e1000000000000a3");
    let shown = foreign.iter().find(|k| k.starts_with("ssh-ed25519 ")).unwrap();
    let shown_fp = {
        let path = world.path("shown.pub");
        fs::write(&path, format!("{shown}\n")).unwrap();
        let out = Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(
        findings[2]["detail"],
        format!("i-0e1000000000000a3's console shows {shown_fp} for this key type"),
        "the mismatch names the key the console shows"
    );
    assert_eq!(findings[2]["host"], format!("[127.0.6.12]:{port}"));
    assert!(findings[5]["detail"].as_str().unwrap().starts_with(
        "127.0.6.15 now belongs to i-0e1000000000000a6 (it had 1 terminated owner(s) before), whose console shows SHA256:"
    ));

    // Batched lookups: one DescribeInstances per filter kind (addresses twice: private and
    // public), not one per line, and one GetConsoleOutput per live instance found.
    let calls: Vec<String> = state.calls()[calls_before..].iter().map(|c| c.operation.clone()).collect();
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(count("DescribeInstances"), 3, "{calls:?}");
    assert_eq!(count("GetConsoleOutput"), 6, "{calls:?}");
}

/// A file of 4,000 lines or more: the Region is listed while the file parses (one
/// DescribeInstances, no filtered lookups), and the listing is only a head start: without
/// `ec2:DescribeInstances`, a file with no EC2 host in it is still audited.
#[test]
fn issue_19_a_large_file_lists_the_region_while_it_parses() {
    // See: issue 19
    let world = World::with(ec2_lab::Inventory::from_toml(AUDIT_INVENTORY).unwrap(), "");
    let state = world.lab.state();
    let key = keygen_ed25519(world.dir.path(), "lan");
    let lan: String = (0..4_000).map(|i| format!("host{i}.lan {key}\n")).collect();
    let file = world.path("known_hosts");
    fs::write(&file, &lan).unwrap();
    state.set_faults(|f| _ = f.deny.insert("ec2:DescribeInstances".into()));
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--no-console", "--json"]).arg(&file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(0), "no EC2 host, nothing to fix, no EC2 call needed: {}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["entries"], 4_000);

    state.set_faults(|f| f.deny.clear());
    let web = state.host_keys("i-0e1000000000000a1");
    let web = web.iter().find(|k| k.starts_with("ssh-ed25519 ")).unwrap();
    let web = web.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let port = world.lab.ssh_port("i-0e1000000000000a1");
    fs::write(&file, format!("{lan}[127.0.6.10]:{port} {web}\n")).unwrap();
    let before = state.calls().len();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--no-console", "--json"]).arg(&file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let last = report["findings"].as_array().unwrap().iter().find(|f| f["line"] == 4_001).cloned();
    assert_eq!(
        last.as_ref().map(|f| f["instance"].clone()),
        Some(Value::from("i-0e1000000000000a1")),
        "{}",
        out.stdout
    );
    let calls: Vec<String> = state.calls()[before..].iter().map(|c| c.operation.clone()).collect();
    assert_eq!(calls, ["DescribeInstances"], "one listing of the Region, no filtered lookups");
}

/// `known-hosts audit --json FILE` exiting `code`: the findings as (line, kind), stderr, and the
/// GetConsoleOutput calls it made.
fn audit_consoles(world: &World, file: &Path, code: i32) -> (Vec<(u64, String)>, String, usize) {
    let state = world.lab.state();
    let before = state.calls().len();
    let mut cmd = world.command(broker());
    // Warnings on stderr, where the user sees them (the world sends logs to a file).
    cmd.env_remove("EC2_BROKER_LOG_FILE").env_remove("EC2_BROKER_LOG");
    cmd.args(["known-hosts", "audit", "--json"]).arg(file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(code), "{}", out.describe());
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    let findings = report["findings"].as_array().unwrap().iter();
    let got = findings.map(|f| (f["line"].as_u64().unwrap(), f["kind"].as_str().unwrap().to_string())).collect();
    let consoles = state.calls()[before..].iter().filter(|c| c.operation == "GetConsoleOutput").count();
    (got, out.stderr.clone(), consoles)
}

#[test]
fn issue_19_consoles_are_read_once_and_a_throttled_audit_goes_on_where_it_stopped() {
    let world = World::with(ec2_lab::Inventory::from_toml(AUDIT_INVENTORY).unwrap(), "");
    let state = world.lab.state();
    let port = world.lab.ssh_port("i-0e1000000000000a1");
    let ids = ["i-0e1000000000000a1", "i-0e1000000000000a3", "i-0e1000000000000a4"];
    let text: String = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let keys = state.host_keys(id);
            let key = keys.iter().find(|k| k.starts_with("ssh-ed25519 ")).unwrap();
            format!(
                "[127.0.6.{}]:{port} {}\n",
                [10, 12, 13][n],
                key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    let file = world.path("known_hosts");
    fs::write(&file, text).unwrap();
    let read = |kinds: [&str; 3]| -> Vec<(u64, String)> { (1..).zip(kinds.map(String::from)).collect() };
    let unread = read(["unknown", "unknown", "unknown"]);
    let checked = read(["verified", "console-mismatch", "unknown"]);

    // EC2 throttles every GetConsoleOutput, even the SDK's retries: the audit still reports (an
    // unchecked key is not a finding to fix: exit 0), says why the host keys could not be
    // checked, and remembers nothing it did not read.
    world.lab.state().set_faults(|f| {
        f.throttle_next = 1000;
        f.throttle_only = Some("GetConsoleOutput".into());
    });
    let (findings, stderr, calls) = audit_consoles(&world, &file, 0);
    assert_eq!(findings, unread, "{stderr}");
    assert!(stderr.contains("EC2 is throttling GetConsoleOutput: 3 of 3 consoles were not read"), "{stderr}");
    assert!(calls >= 3, "{calls}");
    world.lab.state().set_faults(|f| f.throttle_next = 0);

    // Unthrottled: each console is read once; then never again while the instances run.
    let (findings, stderr, calls) = audit_consoles(&world, &file, 1);
    assert_eq!((findings, calls), (checked.clone(), 3), "{stderr}");
    assert!(!stderr.contains("throttling"), "{stderr}");
    let (findings, stderr, calls) = audit_consoles(&world, &file, 1);
    assert_eq!((findings, calls), (checked.clone(), 0), "the second audit asks EC2 nothing: {stderr}");

    // The cache is the user's private file, and a damaged one only costs the calls again.
    let cache = world.path("home/.cache/ec2-broker/consoles.json");
    assert_eq!(fs::metadata(&cache).unwrap().mode() & 0o777, 0o600);
    fs::write(&cache, "{ not json").unwrap();
    let (findings, stderr, calls) = audit_consoles(&world, &file, 1);
    assert_eq!((findings, calls), (checked, 3), "{stderr}");
}

/// `known-hosts pin HOST --route ROUTE` into `file`.
fn pin(world: &World, host: &str, route: &str, file: &Path) -> crate::harness::Output {
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "pin", host, "--route", route, "--port"])
        .arg(world.lab.ssh_port(world.lab.instance_ids().first().unwrap()).to_string())
        .arg("--file")
        .arg(file);
    world.run(cmd, T)
}

#[test]
fn pin_then_plain_ssh_needs_no_prompt_on_every_route() {
    let world = World::new();
    let file = world.path("pinned_known_hosts");
    // A stale entry under the alias is replaced; other lines stay.
    fs::write(&file, "# mine\ni-0a1b2c3d4e5f60718 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0\n")
        .unwrap();
    for (host, id, route) in [
        ("web-1", "i-0a1b2c3d4e5f60718", "direct"),
        ("db-1", "i-0f1b2c3d4e5f6071d", "ssm"),
        ("db-1", "i-0f1b2c3d4e5f6071d", "eice"),
    ] {
        let out = pin(&world, host, route, &file);
        assert!(out.success(), "{route}: {}\n{}", out.describe(), out.context);
        assert!(out.stdout.contains(&format!("HostKeyAlias {id}")), "{}", out.stdout);
        assert_eq!(out.stdout.matches("matches the console").count(), 2, "ed25519 and ecdsa: {}", out.stdout);
        // Plain ssh, strict checking, only the pinned file: no prompt, no failure.
        let route_cfg = if route == "direct" { String::new() } else { format!("--route {route}") };
        let dir = world.path(&format!("cfg-{route}"));
        fs::create_dir_all(&dir).unwrap();
        let config = ec2_lab::demo::write_ssh_config(&world.lab, &broker(), &dir, &route_cfg).unwrap();
        let mut cmd = world.command("ssh");
        cmd.arg("-F").arg(&config).arg("-o").arg(format!("UserKnownHostsFile={}", file.display()));
        cmd.args(["-o", &format!("HostKeyAlias={id}"), "-o", "StrictHostKeyChecking=yes", host, "echo pinned-ok"]);
        let out = world.run(cmd, T);
        assert!(out.success() && out.stdout.contains("pinned-ok"), "{route}: {}\n{}", out.describe(), out.context);
    }
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# mine\n"), "{text}");
    assert!(!text.contains("AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C"), "the stale pin is gone:\n{text}");
    assert_eq!(text.matches("i-0a1b2c3d4e5f60718 ").count(), 2, "{text}");
    assert_eq!(text.matches("i-0f1b2c3d4e5f6071d ").count(), 2, "re-pinning replaces, never piles up:\n{text}");
}

#[test]
fn pin_refuses_a_key_the_console_contradicts() {
    let text = format!(
        "{}\n[[instance]]\nid = \"i-0e2000000000000c1\"\nname = \"rebuilt\"\nprivate_ip = \"127.0.1.31\"\nconsole_keys = \"mismatch\"\n\n\
         [[instance]]\nid = \"i-0e2000000000000c2\"\nname = \"rebooted\"\nprivate_ip = \"127.0.1.32\"\nconsole_keys = \"none\"\n",
        ec2_lab::inventory::DEMO
    );
    let world = World::with(ec2_lab::Inventory::from_toml(&text).unwrap(), "");
    let file = world.path("pinned");
    let out = pin(&world, "rebuilt", "direct", &file);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("refusing to pin instance i-0e2000000000000c1 (rebuilt)"), "{}", out.stderr);
    assert!(!file.exists(), "nothing written on a mismatch");
    let out = pin(&world, "rebooted", "direct", &file);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("shows no host keys") && out.stderr.contains("--accept-unverified"), "{}", out.stderr);
    assert!(!file.exists());
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "pin", "rebooted", "--accept-unverified", "--port"])
        .arg(world.lab.ssh_port("i-0e2000000000000c2").to_string())
        .arg("--file")
        .arg(&file);
    let out = world.run(cmd, T);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(out.stdout.matches("NOT checked").count(), 2, "{}", out.stdout);
}

#[test]
fn key_exposure_lists_every_instance_launched_with_the_key() {
    let world = World::new();
    let port = world.lab.ssh_port("i-0a1b2c3d4e5f60718");
    let file = world.path("known_hosts");
    let host_key = world.lab.state().host_keys("i-0a1b2c3d4e5f60718");
    let host_key = host_key.iter().find(|k| k.starts_with("ssh-ed25519")).unwrap();
    fs::write(&file, format!("[127.0.1.10]:{port} {host_key}\n")).unwrap();
    let lab_admin = world.path("lab-admin.pub");
    fs::write(&lab_admin, format!("{}\n", ec2_lab::inventory::LAB_ADMIN_PUBLIC_KEY)).unwrap();
    let audit = |key: &Path| {
        let mut cmd = world.command(broker());
        cmd.args(["known-hosts", "audit", "--json", "--key"]).arg(key).arg(&file);
        let out = world.run(cmd, T);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        let doc = serde_json::from_str::<Value>(&out.stdout).unwrap();
        crate::output::check_documented(&doc, "ec2-broker.known-hosts-audit/1");
        doc["key_exposure"].clone()
    };
    let exposure = audit(&lab_admin);
    let fp = {
        let out = Command::new("ssh-keygen").arg("-l").arg("-f").arg(&lab_admin).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(
        exposure,
        serde_json::json!({
            "key": fp,
            "key_pairs": ["lab-admin"],
            "undetermined_key_pairs": [],
            "instances": [
                {"id": "i-0a1b2c3d4e5f60718", "name": "web-1", "state": "running", "key_name": "lab-admin",
                 "known_as": [format!("{}:1 [127.0.1.10]:{port}", file.display())]},
                {"id": "i-0b1b2c3d4e5f60719", "name": "api-1", "state": "running", "key_name": "lab-admin", "known_as": []},
            ],
            "audited": [
                {"id": "i-0a1b2c3d4e5f60718", "key_name": "lab-admin", "launched_with_key": true,
                 "known_as": [format!("{}:1 [127.0.1.10]:{port}", file.display())]},
            ],
            "note": ec2_broker::known_hosts::exposure::NOTE,
        })
    );
    // Another key: no key pair holds it.
    let other = keygen_ed25519(world.dir.path(), "other");
    let other_pub = world.path("other.pub");
    assert!(other_pub.exists(), "{other}");
    let exposure = audit(&other_pub);
    assert_eq!(exposure["key_pairs"], serde_json::json!([]));
    assert_eq!(exposure["instances"], serde_json::json!([]));
    assert_eq!(exposure["audited"][0]["launched_with_key"], serde_json::json!(false));
}

#[test]
fn thousands_of_addresses_cost_one_listing_not_a_call_per_batch() {
    let world = World::with(ec2_lab::Inventory::generated(300, 1), "");
    let state = world.lab.state();
    let mut text = String::new();
    let mut instance_lines = 0;
    for inst in state.inventory.instances.iter().filter(|i| i.state == "running") {
        let keys = state.host_keys(&inst.id);
        let key: String = keys[0].split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        text += &format!("{} {key}\n", inst.private_ip.unwrap());
        instance_lines += 1;
    }
    for n in 0..3000u32 {
        text += &format!(
            "10.9.{}.{} {}\n",
            n >> 8,
            n & 255,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0"
        );
    }
    let file = world.path("known_hosts");
    fs::write(&file, text).unwrap();
    let before = state.calls().len();
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "audit", "--json", "--no-console"]).arg(&file);
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let calls: Vec<String> = state.calls()[before..].iter().map(|c| c.operation.clone()).collect();
    assert_eq!(calls, ["DescribeInstances"], "one page lists 300 instances");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let count = |kind: &str| report["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == kind).count();
    assert_eq!(count("no-instance"), 3000);
    assert_eq!(count("unknown") + count("recycled"), instance_lines, "every instance address was found");
}
