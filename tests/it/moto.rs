//! Resolution and key push against moto's server (`../shared/spec/aws-apis.md` §8): an
//! independent double, so our lab is not the only judge of our client. moto stores no pushed
//! keys, so the target here is a plain TCP listener that sends an SSH banner.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::World;

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Moto {
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server not found: pip install 'moto[server]' (.ci/run does)");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("moto_server exited before it was ready").unwrap();
        if let Some(rest) = line.split("Running on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Moto { child, url }
}

/// Seeds moto with boto3: a loopback VPC, instances with fixed private IPs, one stopped.
fn seed(url: &str) -> String {
    let script = format!(
        r#"
import boto3
ec2 = boto3.client("ec2", endpoint_url="{url}", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
sub = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="eu-west-1a")["Subnet"]["SubnetId"]
def run(name, ip, instance_type="m1.small"):
    r = ec2.run_instances(ImageId="ami-760aaa0f", MinCount=1, MaxCount=1, SubnetId=sub, PrivateIpAddress=ip, InstanceType=instance_type,
        TagSpecifications=[{{"ResourceType": "instance", "Tags": [{{"Key": "Name", "Value": name}}]}}])
    return r["Instances"][0]["InstanceId"]
web = run("moto-web", "127.0.1.77")
run("moto-api-1", "127.0.1.78")
run("moto-api-2", "127.0.1.79")
stopped = run("moto-old", "127.0.1.80")
run("moto-nitro", "127.0.1.81", "t3.micro")
ec2.stop_instances(InstanceIds=[stopped])
print(web, stopped)
"#
    );
    let out = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "seeding moto: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn broker(world: &World, moto: &Moto, spec: &str) -> crate::harness::Output {
    let mut cmd = world.command(crate::harness::broker());
    cmd.env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_EC2", &moto.url)
        .args(["proxy", "--key-dir"])
        .arg(world.key_dir())
        .arg(spec);
    world.run(cmd, Duration::from_secs(60))
}

#[test]
fn resolve_and_push_against_moto() {
    let world = World::new();
    let moto = start_moto();
    let ids = seed(&moto.url);
    let mut ids = ids.split_whitespace();
    let (web, stopped) = (ids.next().unwrap().to_string(), ids.next().unwrap().to_string());

    let target = TcpListener::bind("127.0.1.77:0").unwrap();
    let port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in target.incoming().flatten() {
            let _ = conn.write_all(b"SSH-2.0-moto-target\r\n");
        }
    });

    for spec in
        [format!("ec2-user@moto-web:{port}"), format!("ec2-user@{web}:{port}"), format!("ec2-user@127.0.1.77:{port}")]
    {
        let out = broker(&world, &moto, &spec);
        assert!(out.success(), "{spec}: {}\n{}", out.describe(), out.context);
        assert_eq!(out.stdout, "SSH-2.0-moto-target\r\n", "{spec}");
        let log = std::fs::read_to_string(&world.broker_log).unwrap();
        assert!(log.contains(&format!("key pushed instance={web} user=\"ec2-user\"")), "{log}");
    }

    let out = broker(&world, &moto, "moto-api-*");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with("ec2-broker: error: Name=moto-api-* matches 2 running instances:\n  i-"),
        "{}",
        out.stderr
    );

    let out = broker(&world, &moto, "moto-old");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.starts_with(&format!("ec2-broker: error: instance {stopped} (Name=moto-old) is stopped")),
        "{}",
        out.stderr
    );

    let out = broker(&world, &moto, "i-0123456789abcdef0");
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        "ec2-broker: error: no instance matches i-0123456789abcdef0 in eu-west-1: check the spelling, --region and --profile\n"
    );

    // The serial console's preflight reads moto's DescribeInstanceTypes catalogue: m1.small is Xen.
    // (moto has no GetSerialConsoleAccessStatus: the broker warns and goes on.)
    let console = |host: &str| {
        let mut cmd = world.command(crate::harness::broker());
        cmd.env("AWS_ENDPOINT_URL", &moto.url).env("AWS_ENDPOINT_URL_EC2", &moto.url).args(["console", host]);
        world.run(cmd, Duration::from_secs(60))
    };
    let out = console("moto-web");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("m1.small runs on the xen hypervisor"), "{}", out.describe());
    // t3.micro is Nitro: the preflight passes, the endpoint's key checks out (the lab's), and the
    // push reaches moto, which does not implement it.
    let out = console("moto-nitro");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(!out.stderr.contains("hypervisor"), "{}", out.describe());
    assert!(out.stderr.contains("pushing a key for the serial console"), "{}", out.describe());
}

// See: issue 18. The console-output path against moto, the second judge: its GetConsoleOutput
// returns a fixed boot log with no host-key block (aws-apis.md §7), so a known_hosts line for the
// instance's address is "unknown" (the console does not vouch for it), exactly as the lab's
// instance without a block answers; and the audit reads moto's base64 output without error.
#[test]
fn known_hosts_audit_reads_moto_console_output() {
    let world = World::new();
    let moto = start_moto();
    let ids = seed(&moto.url);
    let web = ids.split_whitespace().next().unwrap().to_string();
    let key_file = world.path("host_key");
    let keygen =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key_file).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let public = std::fs::read_to_string(key_file.with_extension("pub")).unwrap();
    let known_hosts = world.path("known_hosts");
    std::fs::write(&known_hosts, format!("127.0.1.77 {public}")).unwrap();
    let mut cmd = world.command(crate::harness::broker());
    cmd.env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_EC2", &moto.url)
        .args(["known-hosts", "audit", "--json"])
        .arg(&known_hosts);
    let out = world.run(cmd, Duration::from_secs(60));
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    let findings = report["findings"].as_array().expect("findings");
    let line = findings.iter().find(|f| f["line"] == 1).unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(line["kind"], "unknown", "{report:#}");
    assert_eq!(line["instance"], web.as_str(), "{report:#}");
    assert!(!out.stderr.contains("error"), "{}", out.describe());
}
