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
        let Some((name, description, host, faults)) = BUILT_IN.iter().find(|(n, ..)| *n == name_or_file) else {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, ..)| *n).collect();
            anyhow::bail!("no scenario '{name_or_file}': use one of {} or a scenario file", names.join(", "));
        };
        let mut inventory = Inventory::demo();
        shell_preferences(name, &mut inventory);
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
        let kms = Scenario::load("kms-required").unwrap();
        let prefs = kms.inventory.session_preferences.as_ref().unwrap();
        assert!(prefs.require_kms_challenge && crate::kms::resolve(&kms.inventory, &prefs.kms_key_id).is_ok());
        assert!(Scenario::load("run-as").unwrap().inventory.session_preferences.unwrap().run_as_enabled);
        assert!(Scenario::load("demo").unwrap().inventory.session_preferences.is_none());
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
            (Some("x"), &[FaultSpec::Throttle(1)][..], 0)
        );
        std::fs::write(&file, "faults = [\"throttle:x\"]\n").unwrap();
        assert!(Scenario::load(file.to_str().unwrap()).unwrap_err().to_string().contains("must be a number"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
