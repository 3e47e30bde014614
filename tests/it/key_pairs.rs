//! Issue 17: `key import` into several Regions (fingerprints as EC2 shows them, computed here with
//! ssh-keygen and openssl), refusals before any call, duplicates per Region, and `key new` (files,
//! modes, never overwriting, a real ssh-agent).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use ec2_lab::Inventory;
use ec2_lab::regions::Regions;
use serde_json::Value;

use crate::conformance::block_on;
use crate::harness::{Output, broker, run};

const T: Duration = Duration::from_secs(60);
const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

/// Two Regions' labs (no instances) behind one endpoint, and a HOME.
struct Two {
    regions: Regions,
    dir: tempfile::TempDir,
}

impl Two {
    fn new() -> Two {
        let dir = tempfile::Builder::new().prefix("ec2-broker-it-").tempdir().expect("temp dir");
        let inventories =
            REGIONS.iter().map(|r| Inventory::from_toml(&format!("region = \"{r}\"\n")).unwrap()).collect();
        let regions = Regions::start(inventories, &dir.path().join("lab")).expect("starting the Regions");
        fs::create_dir_all(dir.path().join("home")).unwrap();
        Two { regions, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn broker(&self, args: &[&str], extra_env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(broker());
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(self.regions.env());
        cmd.env("HOME", self.home()).args(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        run(cmd, T)
    }

    fn import_json(&self, name: &str, key: &Path, regions: &str) -> (Output, Value) {
        let key = key.to_str().unwrap();
        let out = self.broker(&["key", "import", name, "--public-key", key, "--regions", regions, "--json"], &[]);
        let doc = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
        (out, doc)
    }

    fn import_calls(&self) -> usize {
        self.regions.calls().iter().filter(|(_, c)| c.operation == "ImportKeyPair").count()
    }

    /// DescribeKeyPairs in `region` through the SDK: (name, fingerprint, key type).
    fn described(&self, region: &str) -> Vec<(String, String, String)> {
        described(&self.regions.endpoint_url(), region)
    }
}

/// DescribeKeyPairs in `region` through the SDK at `endpoint`: (name, fingerprint, key type).
fn described(endpoint: &str, region: &str) -> Vec<(String, String, String)> {
    block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(Credentials::new(
                ec2_lab::ACCESS_KEY_ID,
                ec2_lab::SECRET_ACCESS_KEY,
                None,
                None,
                "it",
            ))
            .load()
            .await;
        let out = aws_sdk_ec2::Client::new(&config).describe_key_pairs().send().await.expect("DescribeKeyPairs");
        (out.key_pairs().iter())
            .map(|k| {
                let s = |v: Option<&str>| v.unwrap_or_default().to_string();
                (
                    s(k.key_name()),
                    s(k.key_fingerprint()),
                    k.key_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// `ssh-keygen -t TYPE [-b BITS] -N '' -f DIR/NAME`.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out =
        Command::new("ssh-keygen").args(args).args(["-q", "-N", "", "-C", "test", "-f"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    path.with_extension("pub")
}

/// `sh -c SCRIPT` with `$1` = `arg`, stdout trimmed.
fn sh(script: &str, arg: &Path) -> String {
    let out = Command::new("sh").arg("-c").arg(script).arg("sh").arg(arg).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What EC2 shows for an imported Ed25519 key: ssh-keygen's SHA-256, `=`-padded, no prefix.
fn ed25519_expected(public: &Path) -> String {
    let fp = sh("ssh-keygen -l -E sha256 -f \"$1\" | cut -d' ' -f2", public);
    let b64 = fp.strip_prefix("SHA256:").expect("a SHA256 fingerprint").to_string();
    assert_eq!(b64.len(), 43);
    b64 + "="
}

/// What EC2 shows for an imported RSA key: MD5 of the DER SubjectPublicKeyInfo, colon hex.
fn rsa_expected(public: &Path) -> String {
    let line = sh("ssh-keygen -e -m PKCS8 -f \"$1\" | openssl pkey -pubin -outform DER | openssl md5 -c", public);
    line.rsplit("= ").next().unwrap().trim().to_string()
}

// See: issue 17
#[test]
fn issue_17_ed25519_imported_into_two_regions_is_listed_with_the_fingerprint_printed() {
    let two = Two::new();
    let public = keygen(two.dir.path(), "ed", &["-t", "ed25519"]);
    let expected = ed25519_expected(&public);
    let (out, doc) = two.import_json("laptop", &public, &REGIONS.join(","));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(doc["schema"], "ec2-broker.key-import/1");
    assert_eq!(doc["fingerprint"], expected.as_str(), "the tool prints EC2's form");
    assert_eq!(doc["key_type"], "ed25519");
    let regions = doc["regions"].as_array().unwrap();
    assert_eq!(regions.iter().map(|r| r["region"].as_str().unwrap()).collect::<Vec<_>>(), REGIONS);
    for (r, region) in regions.iter().zip(REGIONS) {
        assert_eq!(r["outcome"], "imported", "{r}");
        assert_eq!(r["fingerprint"], expected.as_str(), "{r}");
        assert!(r["key_pair_id"].as_str().unwrap().starts_with("key-"), "{r}");
        let listed = two.described(region);
        assert_eq!(listed, [("laptop".into(), expected.clone(), "ed25519".into())], "{region}");
    }
    // The table says the same.
    let out = two.broker(&["key", "import", "laptop", "--public-key", public.to_str().unwrap()], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains(&format!("EC2 fingerprint {expected}")), "{}", out.stdout);
    assert!(out.stdout.contains("eu-west-1  already exists, same key"), "{}", out.stdout);
}

// See: issue 17
#[test]
fn issue_17_rsa_4096_fingerprint_is_the_md5_of_the_der_public_key() {
    let two = Two::new();
    let public = keygen(two.dir.path(), "rsa", &["-t", "rsa", "-b", "4096"]);
    let expected = rsa_expected(&public);
    assert_eq!(expected.len(), 47, "{expected}");
    // Not the MD5 of the SSH blob (what ssh-keygen -E md5 prints, and the API text suggests).
    let ssh_md5 = sh("ssh-keygen -l -E md5 -f \"$1\" | cut -d' ' -f2", &public);
    assert_ne!(ssh_md5.trim_start_matches("MD5:"), expected);
    let (out, doc) = two.import_json("rsa-4096", &public, "us-east-1");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(doc["fingerprint"], expected.as_str());
    assert_eq!(doc["regions"][0]["fingerprint"], expected.as_str());
    assert_eq!(two.described("us-east-1"), [("rsa-4096".into(), expected, "rsa".into())]);
    assert_eq!(two.described("eu-west-1"), [], "only the Region asked for");
}

// See: issue 17
#[test]
fn issue_17_rsa_1024_and_dsa_are_refused_before_any_call() {
    let two = Two::new();
    let rsa = keygen(two.dir.path(), "rsa1024", &["-t", "rsa", "-b", "1024"]);
    let dsa = two.path("dsa.pub");
    // ssh-dss with p, q, g, y (OpenSSH 9.8+ cannot make DSA keys any more; the blob is enough).
    let blob: Vec<u8> = [&b"ssh-dss"[..], &[0x7f; 128], &[0x7f; 20], &[0x7f; 128], &[0x7f; 128]]
        .iter()
        .flat_map(|p| (p.len() as u32).to_be_bytes().into_iter().chain(p.iter().copied()))
        .collect();
    let b64 = sh("base64 -w0 \"$1\"", &{
        let raw = two.path("dsa.blob");
        fs::write(&raw, blob).unwrap();
        raw
    });
    fs::write(&dsa, format!("ssh-dss {b64} old@host\n")).unwrap();
    for (key, why) in [(&rsa, "RSA key of 1024 bits is too weak"), (&dsa, "a DSA key cannot be imported")] {
        let out = two.broker(
            &["key", "import", "old", "--public-key", key.to_str().unwrap(), "--regions", "eu-west-1,us-east-1"],
            &[],
        );
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        assert_eq!(out.stdout, "", "{}", out.describe());
        assert!(out.stderr.contains(why), "{}", out.stderr);
        assert!(out.stderr.contains("ec2-broker key new"), "{}", out.stderr);
        assert!(out.stderr.contains("nothing was imported"), "{}", out.stderr);
    }
    assert_eq!(two.import_calls(), 0, "no ImportKeyPair reached any Region");
    // EC2 itself would take the 1024-bit key: the refusal is the broker's.
    let _ = two.described("eu-west-1");
}

// See: issue 17
#[test]
fn issue_17_a_name_taken_in_a_region_is_same_key_or_another_key() {
    let two = Two::new();
    let a = keygen(two.dir.path(), "a", &["-t", "ed25519"]);
    let b = keygen(two.dir.path(), "b", &["-t", "ed25519"]);
    let (out, _) = two.import_json("dup", &a, "eu-west-1");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let (out, doc) = two.import_json("dup", &a, "eu-west-1,us-east-1");
    assert_eq!(out.code(), Some(0), "the key is in both Regions: {}", out.describe());
    let outcomes: Vec<&str> =
        doc["regions"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["exists-same-key", "imported"]);
    let out = two.broker(
        &["key", "import", "dup", "--public-key", b.to_str().unwrap(), "--regions", "eu-west-1,us-east-1"],
        &[],
    );
    assert_eq!(out.code(), Some(1), "another key under the name: {}", out.describe());
    assert_eq!(out.stdout.matches("already exists, another key (fingerprint ").count(), 2, "{}", out.stdout);
    assert!(!out.stdout.contains("InvalidKeyPair.Duplicate"), "no error dump: {}", out.stdout);
    for region in REGIONS {
        assert_eq!(two.described(region), [("dup".into(), ed25519_expected(&a), "ed25519".into())]);
    }
}

// See: issue 17
#[test]
fn issue_17_a_failing_region_reports_code_and_request_id_and_the_others_still_import() {
    let two = Two::new();
    let public = keygen(two.dir.path(), "ed", &["-t", "ed25519"]);
    let denied = two.regions.lab("us-east-1").unwrap();
    denied.state().set_faults(|f| _ = f.deny.insert("ec2:ImportKeyPair".into()));
    let (out, doc) = two.import_json("k", &public, "eu-west-1,us-east-1,eu-west-1");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let regions = doc["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "each Region once: {doc}");
    assert_eq!(regions[0]["outcome"], "imported");
    let failed = &regions[1];
    assert_eq!(
        (failed["region"].as_str(), failed["outcome"].as_str()),
        (Some("us-east-1"), Some("failed")),
        "{failed}"
    );
    assert_eq!(failed["code"], "UnauthorizedOperation", "{failed}");
    let request_id = failed["request_id"].as_str().unwrap_or_else(|| panic!("a request id: {failed}"));
    assert!(failed["hint"].is_string(), "{failed}");
    assert_eq!(two.described("eu-west-1").len(), 1);
    assert_eq!(two.described("us-east-1").len(), 0);
    // A Region the account has not enabled fails alone too, as a table line.
    let out = two.broker(
        &["key", "import", "k2", "--public-key", public.to_str().unwrap(), "--regions", "ap-south-1,eu-west-1"],
        &[],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stdout.contains("ap-south-1  failed: EC2 ImportKeyPair: AuthFailure"), "{}", out.stdout);
    assert!(out.stdout.contains("eu-west-1   imported as key-"), "{}", out.stdout);
    assert!(!request_id.is_empty());
}

// See: issue 17
#[test]
fn issue_17_key_new_writes_a_key_once_and_adds_it_to_a_real_agent() {
    let two = Two::new();
    let ssh = two.home().join(".ssh");
    let out = two.broker(&["key", "new", "work"], &[]);
    assert!(out.success(), "{}", out.describe());
    let (private, public) = (ssh.join("work"), ssh.join("work.pub"));
    assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&public).unwrap().mode() & 0o777, 0o644);
    // ssh-keygen reads both: the private key's public half is the .pub file.
    let listed = sh("ssh-keygen -l -f \"$1\"", &private);
    assert!(listed.starts_with("256 SHA256:") && listed.ends_with("work@ec2-broker (ED25519)"), "{listed}");
    let fp = listed.split_whitespace().nth(1).unwrap().to_string();
    assert!(out.stdout.contains(&fp), "{}", out.stdout);
    assert_eq!(sh("ssh-keygen -y -f \"$1\" | cut -d' ' -f1,2", &private), sh("cut -d' ' -f1,2 \"$1\"", &public));
    assert!(
        out.stdout.contains(&format!("next: ec2-broker key import work --public-key {}", public.display())),
        "{}",
        out.stdout
    );
    // Never overwritten, never id_ed25519.
    let before = fs::read(&private).unwrap();
    let again = two.broker(&["key", "new", "work"], &[]);
    assert_eq!(again.code(), Some(1), "{}", again.describe());
    assert!(again.stderr.contains("exists: ec2-broker never overwrites a key"), "{}", again.stderr);
    assert_eq!(fs::read(&private).unwrap(), before);
    let reserved = two.broker(&["key", "new", "id_ed25519"], &[]);
    assert_eq!(reserved.code(), Some(1), "{}", reserved.describe());
    assert!(!ssh.join("id_ed25519").exists());
    // The default name carries the date.
    let out = two.broker(&["key", "new"], &[]);
    assert!(out.success(), "{}", out.describe());
    let made: Vec<String> =
        fs::read_dir(&ssh).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(
        made.iter().any(|n| n.starts_with("ec2-broker-20") && n.len() == "ec2-broker-2026-12-06".len()),
        "{made:?}"
    );
    // The key imports as it is.
    let (out, doc) = two.import_json("work", &public, "eu-west-1");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(doc["fingerprint"], ed25519_expected(&public).as_str());

    // --agent: a real ssh-agent on a socket of the test's.
    let sock = two.path("agent.sock");
    let mut agent = Command::new("ssh-agent").arg("-D").arg("-a").arg(&sock).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = two.broker(&["key", "new", "agent-key", "--agent"], &[("SSH_AUTH_SOCK", &sock)]);
    let listed = Command::new("ssh-add").arg("-l").env("SSH_AUTH_SOCK", &sock).output().unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("added to ssh-agent"), "{}", out.stdout);
    let agent_fp = sh("ssh-keygen -l -f \"$1\" | cut -d' ' -f2", &ssh.join("agent-key.pub"));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&agent_fp), "ssh-add -l: {listed}");
}

// See: issue 17
#[test]
fn issue_17_known_hosts_audit_suggests_key_new_for_an_rsa_key() {
    let two = Two::new();
    let rsa = keygen(two.dir.path(), "rsa", &["-t", "rsa", "-b", "3072"]);
    let ed = keygen(two.dir.path(), "ed", &["-t", "ed25519"]);
    let known_hosts = two.path("known_hosts");
    fs::write(&known_hosts, "").unwrap();
    let audit = |key: &Path| {
        let args =
            ["known-hosts", "audit", "--no-console", "--key", key.to_str().unwrap(), known_hosts.to_str().unwrap()];
        let out = two.broker(&args, &[]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        out.stdout
    };
    let text = audit(&rsa);
    assert!(
        text.contains("advice: ") && text.contains("is an RSA key") && text.contains("ec2-broker key new"),
        "{text}"
    );
    assert!(!audit(&ed).contains("advice:"));
}

// ---- key import --from HOST (seed-000: web-1's authorized_keys holds key A, the AMI's) ----

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

fn seed_000() -> crate::harness::World {
    let scenario = ec2_lab::scenario::Scenario::load("seed-000").expect("seed-000");
    crate::harness::World::with(scenario.inventory, "--route direct --no-push")
}

fn key_import(world: &crate::harness::World, args: &[&str]) -> Output {
    let mut cmd = world.command(broker());
    cmd.args(["key", "import"]).args(args);
    world.run(cmd, Duration::from_secs(120))
}

fn world_imports(world: &crate::harness::World) -> usize {
    world.lab.state().calls().iter().filter(|c| c.operation == "ImportKeyPair").count()
}

/// `SHA256:…` of a public key file.
fn ssh_fingerprint(public: &Path) -> String {
    sh("ssh-keygen -l -E sha256 -f \"$1\" | cut -d' ' -f2", public)
}

// See: issue 17
#[test]
fn issue_17_import_from_web_1_makes_describe_key_pairs_show_key_a() {
    let world = seed_000();
    let keys_file = world.lab.instance(WEB_1).sshd.authorized_keys.clone();
    let before = fs::read(&keys_file).unwrap();
    let ami_public = world.lab.instance(WEB_1).sshd.ami_key.clone().expect("LAB_AMI_KEY").with_extension("pub");
    let out = key_import(&world, &["ami-key", "--from", "web-1"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains(&ssh_fingerprint(&ami_public)), "each key by fingerprint: {}", out.stdout);
    assert!(out.stdout.contains("ami-owner@other-account"), "{}", out.stdout);
    let expected = ed25519_expected(&ami_public);
    assert!(out.stdout.contains(&format!("EC2 fingerprint {expected}")), "{}", out.stdout);
    let listed = described(&world.lab.endpoint_url(), "eu-west-1");
    assert!(listed.contains(&("ami-key".into(), expected, "ed25519".into())), "{listed:?}");
    assert_eq!(fs::read(&keys_file).unwrap(), before, "reading writes nothing");
}

// See: issue 17
#[test]
fn issue_17_import_from_several_keys_lists_them_and_a_weak_one_is_refused() {
    let world = seed_000();
    let keys_file = world.lab.instance(WEB_1).sshd.authorized_keys.clone();
    let second = keygen(world.dir.path(), "second", &["-t", "ed25519"]);
    let weak = keygen(world.dir.path(), "weak", &["-t", "rsa", "-b", "1024"]);
    let mut text = fs::read_to_string(&keys_file).unwrap();
    for public in [&second, &weak] {
        text += &fs::read_to_string(public).unwrap();
    }
    fs::write(&keys_file, &text).unwrap();
    let out = key_import(&world, &["two", "--from", "web-1"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("holds 2 keys that can be imported"), "{}", out.describe());
    assert!(out.stderr.contains(&ssh_fingerprint(&second)), "{}", out.describe());
    assert!(out.stderr.contains(&format!("{} ssh-rsa", ssh_fingerprint(&weak))), "{}", out.describe());
    assert!(out.stderr.contains("refused, an RSA key of 1024 bits is too weak"), "{}", out.describe());
    assert!(out.stderr.contains("ec2-broker key import two --from web-1 --fingerprint FP"), "{}", out.describe());
    let out = key_import(&world, &["weak", "--from", "web-1", "--fingerprint", &ssh_fingerprint(&weak)]);
    assert!(!out.success() && out.stderr.contains("is refused: an RSA key of 1024 bits"), "{}", out.describe());
    assert_eq!(world_imports(&world), 0, "nothing imported without a choice");
    let out = key_import(&world, &["two", "--from", "web-1", "--fingerprint", &ssh_fingerprint(&second)]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let listed = described(&world.lab.endpoint_url(), "eu-west-1");
    assert!(listed.contains(&("two".into(), ed25519_expected(&second), "ed25519".into())), "{listed:?}");
    assert_eq!(fs::read_to_string(&keys_file).unwrap(), text, "reading writes nothing");
}

// See: issue 17
#[test]
fn issue_17_import_from_a_host_ssm_does_not_manage_says_so() {
    let world = seed_000();
    world.lab.state().set_ssm_status(WEB_1, ec2_lab::ssm::SsmStatus::None);
    let out = key_import(&world, &["ami-key", "--from", "web-1"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains(&format!("SSM cannot run commands on {WEB_1}")), "{}", out.describe());
    assert!(out.stderr.contains("--public-key FILE"), "{}", out.describe());
    assert_eq!(world_imports(&world), 0);
}
