//! Scenarios for `ec2-lab up --scenario NAME|FILE`: an inventory, the faults to set once the lab
//! is up, and the instance the scenario is about (`LAB_HOST` in the env file).
//!
//! A scenario file is TOML:
//!
//! ```toml
//! description = "SSM websockets that say Bye after 64 KiB"
//! host = "db-1"                      # optional: LAB_HOST
//! faults = ["ssm-bye:65536"]         # optional: --fault specs (crate::fault_spec)
//! inventory = "inventory.toml"       # optional: relative to this file; the demo inventory if absent
//! ```

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::Inventory;
use crate::fault_spec::FaultSpec;

/// app-1's common lines (its `[[instance]]` table is left open for each scenario's own).
macro_rules! app_1 {
    () => {
        "\n[[instance]]\nid = \"i-0a9e000000000a001\"\nname = \"app-1\"\nprivate_ip = \"127.0.1.60\"\n\
         vpc_id = \"vpc-0a9e0000000000001\"\nsubnet_id = \"subnet-0a9e0000000000001\"\ninbound = false\n\
         launch_time = \"2026-11-22T09:00:00.000Z\"\n"
    };
}

/// app-1's VPC made private: a main table with the local route only, and the subnet's own table
/// sending 0.0.0.0/0 to a NAT gateway that is gone (blackhole).
macro_rules! private_subnet {
    () => {
        "\n[[route_table]]\nid = \"rtb-0a9e0000000000001\"\nvpc_id = \"vpc-0a9e0000000000001\"\nmain = true\n\n\
         [[route_table]]\nid = \"rtb-0a9e0000000000002\"\nvpc_id = \"vpc-0a9e0000000000001\"\n\
         subnets = [\"subnet-0a9e0000000000001\"]\n\
         routes = [{ destination = \"0.0.0.0/0\", target = \"nat-0a9e0000000000001\", state = \"blackhole\" }]\n\n"
    };
}

/// An interface endpoint of app-1's VPC behind the `endpoints-ssh-only` group.
macro_rules! endpoint {
    ($id:literal, $service:literal) => {
        concat!(
            "[[vpc_endpoint]]\nid = \"",
            $id,
            "\"\nservice = \"",
            $service,
            "\"\n",
            "vpc_id = \"vpc-0a9e0000000000001\"\nsubnets = [\"subnet-0a9e0000000000001\"]\n",
            "security_groups = [\"sg-0a9e0000000000e01\"]\n\n"
        )
    };
}

/// A scenario, ready to start.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (a built-in's, or the file's path).
    pub name: String,
    /// One line for `ec2-lab scenarios`.
    pub description: String,
    /// The inventory to start.
    pub inventory: Inventory,
    /// The faults to set once the lab is up.
    pub faults: Vec<FaultSpec>,
    /// The instance the scenario is about (Name or id), if any.
    pub host: Option<String>,
}

/// The built-in scenarios, all over the demo inventory: (name, description, host, faults).
pub const BUILT_IN: &[(&str, &str, Option<&str>, &[&str])] = &[
    ("demo", "the demo inventory, no faults", None, &[]),
    ("web-1", "web-1: public and private address, Instance Connect, SSM, serial console", Some("web-1"), &[]),
    ("db-1", "db-1: no inbound network; SSM and the Instance Connect Endpoint reach it", Some("db-1"), &[]),
    (
        "ssm-bye",
        "db-1 over SSM: the first data-channel websocket says Bye after 64 KiB",
        Some("db-1"),
        &["ssm-bye:65536"],
    ),
    (
        "ssm-drop",
        "db-1 over SSM: the first data-channel websocket is reset after 64 KiB",
        Some("db-1"),
        &["ssm-drop:65536"],
    ),
    (
        "agent-offline",
        "db-1's SSM agent lost its connection (TargetNotConnected)",
        Some("db-1"),
        &["agent-offline:i-0f1b2c3d4e5f6071d"],
    ),
    ("throttled", "web-1 with the first two API calls throttled", Some("web-1"), &["throttle:2"]),
    (
        "slow-api",
        "web-1 with 200 ms on every API call and 1 s on DescribeInstances",
        Some("web-1"),
        &["latency:200", "latency:1000:DescribeInstances"],
    ),
    ("no-ssm", "db-1 with ssm:StartSession denied by IAM", Some("db-1"), &["deny:ssm:StartSession"]),
    // Session Manager shells (issue 16): the demo inventory plus preferences, see `shell_preferences`.
    (
        "kms-required",
        "db-1: Session Manager preferences require KMS (alias/ssm-sessions) and the random challenge",
        Some("db-1"),
        &[],
    ),
    ("kms-denied", "kms-required, with kms:GenerateDataKey denied by IAM", Some("db-1"), &["deny:kms:GenerateDataKey"]),
    ("run-as", "db-1: Run As on, sessions start as ec2-user; shell profile sets PS1", Some("db-1"), &[]),
    // Issue 17: key placement with Run Command, see `shared_ami`.
    (
        "seed-000",
        "web-1 from an AMI shared by another account: launched with key pair lab-admin, its authorized_keys \
         holds only the other account's key (LAB_AMI_KEY), no Instance Connect package, SSM agent online",
        Some("web-1"),
        &[],
    ),
];

/// The instance every agent-offline scenario is about.
pub const AGENT_HOST: &str = "app-1";

/// The agent-offline scenarios (issue 16, `../shared/spec/keys-and-shell.md` §7), one per cause,
/// each about [`AGENT_HOST`]: (name, description, inventory TOML added to the demo inventory).
/// app-1 sits in a VPC of its own, without an Instance Connect Endpoint and without inbound
/// network, so only its SSM agent could reach it.
pub const AGENT_OFFLINE: &[(&str, &str, &str)] = &[
    (
        "agent-no-profile",
        "app-1's agent never registered: no instance profile, Default Host Management off",
        concat!(app_1!(), "ssm = \"none\"\ninstance_profile = \"none\"\npublic_ip = \"127.0.2.60\"\n"),
    ),
    (
        "agent-role-no-policy",
        "app-1's profile role lacks AmazonSSMManagedInstanceCore (an inline policy has one core action)",
        concat!(
            app_1!(),
            "ssm = \"none\"\npublic_ip = \"127.0.2.60\"\n",
            "instance_profile = \"arn:aws:iam::123456789012:instance-profile/app-no-core\"\n\n",
            "[[instance_profile]]\nname = \"app-no-core\"\nrole = \"app-no-core\"\n\n",
            "[[role]]\narn = \"arn:aws:iam::123456789012:role/app-no-core\"\ntrusted_services = [\"ec2.amazonaws.com\"]\n",
            "managed_policies = [\"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess\"]\n",
            "inline_policies = { logs = '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",",
            "\"Action\":[\"logs:PutLogEvents\",\"ssm:UpdateInstanceInformation\"],\"Resource\":\"*\"}]}' }\n",
        ),
    ),
    (
        "agent-role-trust",
        "app-1's profile role has the core policy but trusts lambda.amazonaws.com, not EC2",
        concat!(
            app_1!(),
            "ssm = \"none\"\npublic_ip = \"127.0.2.60\"\n",
            "instance_profile = \"arn:aws:iam::123456789012:instance-profile/app-lambda\"\n\n",
            "[[instance_profile]]\nname = \"app-lambda\"\nrole = \"app-lambda\"\n\n",
            "[[role]]\narn = \"arn:aws:iam::123456789012:role/app-lambda\"\ntrusted_services = [\"lambda.amazonaws.com\"]\n",
            "managed_policies = [\"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore\"]\n",
        ),
    ),
    (
        "agent-no-route",
        "app-1 in a private subnet: no ssm/ssmmessages/ec2messages endpoints, its NAT route a blackhole",
        concat!(
            app_1!(),
            "ssm = \"none\"\ninstance_profile = \"arn:aws:iam::123456789012:instance-profile/lab-ssm\"\n",
            private_subnet!(),
        ),
    ),
    (
        "agent-endpoint-sg",
        "app-1 in a private subnet whose SSM endpoints' security group admits only TCP 22",
        concat!(
            app_1!(),
            "ssm = \"none\"\ninstance_profile = \"arn:aws:iam::123456789012:instance-profile/lab-ssm\"\n",
            "security_groups = [\"sg-0a9e0000000000a01\"]\n",
            private_subnet!(),
            "[[security_group]]\nid = \"sg-0a9e0000000000a01\"\nname = \"app\"\nvpc_id = \"vpc-0a9e0000000000001\"\n\n",
            "[[security_group]]\nid = \"sg-0a9e0000000000e01\"\nname = \"endpoints-ssh-only\"\n",
            "vpc_id = \"vpc-0a9e0000000000001\"\n",
            "ingress = [{ protocol = \"tcp\", from_port = 22, to_port = 22, cidrs = [\"10.0.0.0/8\"] }]\n\n",
            endpoint!("vpce-0a9e0000000000501", "ssm"),
            endpoint!("vpce-0a9e0000000000502", "ssmmessages"),
            endpoint!("vpce-0a9e0000000000503", "ec2messages"),
        ),
    ),
    (
        "agent-egress",
        "app-1's security group lets only TCP 22 out: no HTTPS to Systems Manager",
        concat!(
            app_1!(),
            "ssm = \"none\"\npublic_ip = \"127.0.2.60\"\nsecurity_groups = [\"sg-0a9e0000000000a02\"]\n",
            "instance_profile = \"arn:aws:iam::123456789012:instance-profile/lab-ssm\"\n\n",
            "[[security_group]]\nid = \"sg-0a9e0000000000a02\"\nname = \"app-egress-22\"\nvpc_id = \"vpc-0a9e0000000000001\"\n",
            "egress = [{ protocol = \"tcp\", from_port = 22, to_port = 22, cidrs = [\"0.0.0.0/0\"] }]\n",
        ),
    ),
    (
        "agent-imds-off",
        "app-1 with instance metadata disabled (MetadataOptions.HttpEndpoint = disabled)",
        concat!(
            app_1!(),
            "ssm = \"none\"\npublic_ip = \"127.0.2.60\"\nmetadata_endpoint = \"disabled\"\n",
            "instance_profile = \"arn:aws:iam::123456789012:instance-profile/lab-ssm\"\n",
        ),
    ),
    (
        "agent-old",
        "app-1's agent 3.0.161.0 is online but too old for port sessions (3.0.222.0)",
        concat!(app_1!(), "ssm = \"online\"\npublic_ip = \"127.0.2.60\"\nssm_agent_version = \"3.0.161.0\"\n"),
    ),
    (
        "agent-connection-lost",
        "app-1's agent stopped pinging (ConnectionLost since LastPingDateTime)",
        concat!(app_1!(), "ssm = \"connection_lost\"\npublic_ip = \"127.0.2.60\"\n"),
    ),
    (
        "agent-not-connected",
        "app-1's agent is Online but GetConnectionStatus says notconnected",
        concat!(app_1!(), "ssm = \"online\"\npublic_ip = \"127.0.2.60\"\nssm_connected = false\n"),
    ),
];

/// The Session Manager preferences and KMS keys of the shell scenarios (`kms-required`,
/// `kms-denied`, `run-as`) on top of the demo inventory.
fn shell_preferences(name: &str, inventory: &mut Inventory) {
    use crate::inventory::{KmsKeySpec, SessionPreferences};
    let kms = || SessionPreferences {
        kms_key_id: "alias/ssm-sessions".into(),
        require_kms_challenge: true,
        ..SessionPreferences::default()
    };
    let prefs = match name {
        "kms-required" | "kms-denied" => kms(),
        "run-as" => SessionPreferences {
            run_as_enabled: true,
            run_as_default_user: "ec2-user".into(),
            shell_profile_linux: "PS1='run-as$ '".into(),
            ..SessionPreferences::default()
        },
        _ => return,
    };
    inventory.session_preferences = Some(prefs);
    inventory.kms_keys.push(KmsKeySpec {
        id: "5e55a0e1-0000-4000-8000-00000000a11a".into(),
        aliases: vec!["alias/ssm-sessions".into()],
        state: "Enabled".into(),
    });
}

/// `seed-000`: web-1 launched from an AMI shared by another account (`keys-and-shell.md` §4):
/// the key pair it was launched with never reached it, and without the Instance Connect package
/// a pushed key does nothing; only a key placed with Run Command lets ssh in.
fn shared_ami(name: &str, inventory: &mut Inventory) {
    if name != "seed-000" {
        return;
    }
    for inst in inventory.instances.iter_mut().filter(|i| i.name.as_deref() == Some("web-1")) {
        inst.shared_ami = true;
        inst.instance_connect = false;
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    description: String,
    host: Option<String>,
    #[serde(default)]
    faults: Vec<String>,
    inventory: Option<String>,
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file (any argument that names an existing
    /// file or ends in `.toml`).
    pub fn load(name_or_file: &str) -> anyhow::Result<Scenario> {
        let path = Path::new(name_or_file);
        if path.is_file() || name_or_file.ends_with(".toml") {
            return Self::from_file(path);
        }
        if let Some((name, description, extra)) = AGENT_OFFLINE.iter().find(|(n, ..)| *n == name_or_file) {
            let inventory = Inventory::from_toml(&format!("{}\n{extra}", crate::inventory::DEMO))
                .with_context(|| format!("scenario {name}'s inventory"))?;
            return Ok(Scenario {
                name: (*name).into(),
                description: (*description).into(),
                inventory,
                faults: Vec::new(),
                host: Some(AGENT_HOST.into()),
            });
        }
        let Some((name, description, host, faults)) = BUILT_IN.iter().find(|(n, ..)| *n == name_or_file) else {
            let names: Vec<&str> =
                BUILT_IN.iter().map(|(n, ..)| *n).chain(AGENT_OFFLINE.iter().map(|(n, ..)| *n)).collect();
            anyhow::bail!("no scenario '{name_or_file}': use one of {} or a scenario file", names.join(", "));
        };
        let mut inventory = Inventory::demo();
        shell_preferences(name, &mut inventory);
        shared_ami(name, &mut inventory);
        Ok(Scenario {
            name: (*name).into(),
            description: (*description).into(),
            inventory,
            faults: faults.iter().map(|f| f.parse().map_err(anyhow::Error::msg)).collect::<anyhow::Result<_>>()?,
            host: host.map(str::to_string),
        })
    }

    /// A scenario file (TOML, see the module docs).
    pub fn from_file(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
        let file: ScenarioFile =
            toml::from_str(&text).with_context(|| format!("parsing scenario {}", path.display()))?;
        let inventory = match &file.inventory {
            Some(rel) => {
                let inv = path.parent().unwrap_or(Path::new(".")).join(rel);
                let text =
                    std::fs::read_to_string(&inv).with_context(|| format!("reading inventory {}", inv.display()))?;
                Inventory::from_toml(&text).with_context(|| format!("parsing inventory {}", inv.display()))?
            }
            None => Inventory::demo(),
        };
        let faults = (file.faults.iter())
            .map(|f| f.parse().map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display())))
            .collect::<anyhow::Result<_>>()?;
        Ok(Scenario {
            name: path.display().to_string(),
            description: file.description,
            inventory,
            faults,
            host: file.host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_loads_and_names_a_known_host() {
        for (name, ..) in BUILT_IN {
            let s = Scenario::load(name).unwrap();
            if let Some(host) = &s.host {
                assert!(s.inventory.instances.iter().any(|i| i.name.as_ref() == Some(host)), "{name}: {host}");
            }
            for f in &s.faults {
                if let FaultSpec::Agent { instance, .. } = f {
                    assert!(s.inventory.get(instance).is_some(), "{name}: {instance}");
                }
            }
        }
        assert!(Scenario::load("nope").unwrap_err().to_string().contains("use one of demo, web-1"));
        // Issue 17: web-1 from a shared AMI, without Instance Connect, agent online.
        let seed = Scenario::load("seed-000").unwrap();
        let web_1 = seed.inventory.instances.iter().find(|i| i.name.as_deref() == Some("web-1")).unwrap();
        assert!(web_1.shared_ami && !web_1.instance_connect && web_1.key_name.is_some());
        assert_eq!(web_1.ssm_status(), crate::ssm::SsmStatus::Online);
        let kms = Scenario::load("kms-required").unwrap();
        let prefs = kms.inventory.session_preferences.as_ref().unwrap();
        assert!(prefs.require_kms_challenge && crate::kms::resolve(&kms.inventory, &prefs.kms_key_id).is_ok());
        assert!(Scenario::load("run-as").unwrap().inventory.session_preferences.unwrap().run_as_enabled);
        assert!(Scenario::load("demo").unwrap().inventory.session_preferences.is_none());
    }

    #[test]
    fn every_agent_offline_scenario_loads_with_app_1() {
        for (name, ..) in AGENT_OFFLINE {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let app = s.inventory.instances.iter().find(|i| i.name.as_deref() == Some(AGENT_HOST));
            assert!(app.is_some(), "{name}");
            assert_eq!(s.host.as_deref(), Some(AGENT_HOST));
        }
        let sg = Scenario::load("agent-endpoint-sg").unwrap().inventory;
        assert_eq!(sg.vpc_endpoints.len(), 3);
        assert!(sg.vpc_endpoints.iter().all(|e| e.state == "available"), "lower case, as on the wire");
    }

    #[test]
    fn scenario_files_name_faults_and_an_inventory() {
        let dir = std::env::temp_dir().join(format!("ec2-lab-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inv.toml"), "region = \"eu-west-1\"\n").unwrap();
        let file = dir.join("s.toml");
        std::fs::write(&file, "host = \"x\"\nfaults = [\"throttle:1\"]\ninventory = \"inv.toml\"\n").unwrap();
        let s = Scenario::load(file.to_str().unwrap()).unwrap();
        assert_eq!(
            (s.host.as_deref(), s.faults.as_slice(), s.inventory.instances.len()),
            (Some("x"), &[FaultSpec::Throttle { count: 1, operation: None }][..], 0)
        );
        std::fs::write(&file, "faults = [\"throttle:x\"]\n").unwrap();
        assert!(Scenario::load(file.to_str().unwrap()).unwrap_err().to_string().contains("must be a number"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
