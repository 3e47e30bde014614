//! Picking the one instance a host spec means, from what DescribeInstances returned. Pure.

use crate::target::instance::{Instance, InstanceState};
use crate::target::spec::Target;
use crate::text::printable;

/// Why a host spec does not name exactly one running instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// Nothing matched.
    #[error("no instance matches {target} in {region}: check the spelling, --region and --profile")]
    NotFound {
        /// What was looked for.
        target: String,
        /// Region searched.
        region: String,
    },
    /// Several running instances matched.
    #[error(
        "{target} matches {} running instances:\n{}\npick one by instance id (e.g. ssh {}) or with a more specific tag:KEY=VALUE",
        candidates.len(), list(candidates), candidates[0].id
    )]
    Ambiguous {
        /// What was looked for.
        target: String,
        /// The running matches.
        candidates: Vec<Instance>,
    },
    /// The one match is not running.
    #[error("instance {} ({}) is {}: {}", instance.id, name_or_dash(instance), instance.state, not_running_advice(instance))]
    NotRunning {
        /// The match.
        instance: Box<Instance>,
    },
    /// Several matches, none running.
    #[error("{target} matches {} instances and none is running:\n{}", candidates.len(), list(candidates))]
    NoneRunning {
        /// What was looked for.
        target: String,
        /// The matches.
        candidates: Vec<Instance>,
    },
}

/// Picks the running instance `target` names among `found` (the API's answer for that target).
pub(crate) fn pick(target: &Target, region: &str, found: Vec<Instance>) -> Result<Instance, ResolveError> {
    let target_text = target.to_string();
    let (running, other): (Vec<Instance>, Vec<Instance>) =
        found.into_iter().partition(|i| i.state == InstanceState::Running);
    match (running.len(), other.len()) {
        (1, _) => Ok(running.into_iter().next().expect("one running instance")),
        (0, 0) => Err(ResolveError::NotFound { target: target_text, region: region.into() }),
        (0, 1) => Err(ResolveError::NotRunning { instance: Box::new(other.into_iter().next().expect("one")) }),
        (0, _) => Err(ResolveError::NoneRunning { target: target_text, candidates: sorted(other) }),
        _ => Err(ResolveError::Ambiguous { target: target_text, candidates: sorted(running) }),
    }
}

fn sorted(mut v: Vec<Instance>) -> Vec<Instance> {
    v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    v
}

fn list(candidates: &[Instance]) -> String {
    candidates.iter().map(|i| format!("  {}", i.summary())).collect::<Vec<_>>().join("\n")
}

fn name_or_dash(i: &Instance) -> String {
    i.name.as_deref().map_or_else(|| "no Name tag".into(), |n| format!("Name={}", printable(n)))
}

fn not_running_advice(i: &Instance) -> String {
    match i.state {
        InstanceState::Stopped | InstanceState::Stopping => {
            format!("start it first (aws ec2 start-instances --instance-ids {})", i.id)
        }
        InstanceState::Pending => "it is still booting: retry in a minute".into(),
        InstanceState::Terminated | InstanceState::ShuttingDown => {
            "it is gone: find its replacement (ec2-broker proxy matches running instances only)".into()
        }
        InstanceState::Running | InstanceState::Unknown => "only running instances can be reached".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, state: InstanceState) -> Instance {
        let mut i = Instance::new(id, state);
        i.name = Some(name.into());
        i.availability_zone = Some("eu-west-1a".into());
        i.private_ip = Some("10.0.0.1".parse().unwrap());
        i.launch_time = Some("2026-11-01T00:00:00.000Z".into());
        i
    }

    fn name(n: &str) -> Target {
        Target::Name(n.into())
    }

    #[test]
    fn one_running_wins_over_stopped_twins() {
        let found = vec![
            inst("i-0000000a", "web", InstanceState::Terminated),
            inst("i-0000000b", "web", InstanceState::Running),
        ];
        assert_eq!(pick(&name("web"), "eu-west-1", found).unwrap().id, "i-0000000b");
    }

    #[test]
    fn messages() {
        let e = pick(&name("nope"), "eu-west-1", vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no instance matches Name=nope in eu-west-1: check the spelling, --region and --profile"
        );
        let e = pick(
            &name("web-*"),
            "r",
            vec![
                inst("i-0000000b", "web-2", InstanceState::Running),
                inst("i-0000000a", "web-1", InstanceState::Running),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Name=web-* matches 2 running instances:\n  i-0000000a (Name=web-1, running, eu-west-1a, 10.0.0.1, launched 2026-11-01T00:00:00.000Z)\n  i-0000000b (Name=web-2, running, eu-west-1a, 10.0.0.1, launched 2026-11-01T00:00:00.000Z)\npick one by instance id (e.g. ssh i-0000000a) or with a more specific tag:KEY=VALUE"
        );
        let e = pick(&name("db"), "r", vec![inst("i-0000000c", "db", InstanceState::Stopped)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "instance i-0000000c (Name=db) is stopped: start it first (aws ec2 start-instances --instance-ids i-0000000c)"
        );
        let e = pick(&name("db"), "r", vec![inst("i-0000000c", "db", InstanceState::Pending)]).unwrap_err();
        assert!(e.to_string().ends_with("is pending: it is still booting: retry in a minute"), "{e}");
        let e = pick(
            &name("db"),
            "r",
            vec![inst("i-0000000c", "db", InstanceState::Stopped), inst("i-0000000d", "db", InstanceState::Terminated)],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("Name=db matches 2 instances and none is running:\n  i-0000000c"), "{e}");
    }

    // See: issue 14 (§5, untrusted text): a Name tag cannot forge lines or drive the terminal.
    #[test]
    fn name_tags_are_printable_in_every_message() {
        let evil = "web\x1b]0;owned\x07\n  i-0fake (Name=ok";
        let e = pick(
            &name("web*"),
            "r",
            vec![inst("i-0000000a", evil, InstanceState::Running), inst("i-0000000b", "web-2", InstanceState::Running)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("  i-0000000a (Name=web\\x1b]0;owned\\x07\\x0a  i-0fake (Name=ok, running"), "{e}");
        assert_eq!(e.lines().count(), 4, "one line per candidate: {e}");
        let e = pick(&name("db"), "r", vec![inst("i-0000000c", evil, InstanceState::Stopped)]).unwrap_err();
        assert!(!e.to_string().contains(['\x1b', '\x07', '\n']), "{e}");
        let mut i = inst("i-0000000d", evil, InstanceState::Running);
        assert_eq!(i.label(), "instance i-0000000d (web\\x1b]0;owned\\x07\\x0a  i-0fake (Name=ok)");
        i.name = None;
        assert_eq!(i.label(), "instance i-0000000d");
    }
}
