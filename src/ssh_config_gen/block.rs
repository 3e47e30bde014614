//! Host blocks: an alias per instance (from its Name tag, made unique), and the ssh_config lines
//! that send it through the broker. Pure; nothing from a tag reaches the file unsanitized.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use crate::inventory::Scope;
use crate::target::instance::{Instance, InstanceState};

/// How the blocks are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// `User` for every block; `None`: `Administrator` on Windows, else `ec2-user`.
    pub user: Option<String>,
    /// Start aliases with `PROFILE.` (the profile's name, or `default`).
    pub prefix_profile: bool,
    /// The broker as the ProxyCommand starts it (a path or a name on PATH).
    pub broker: String,
    /// The directory `proxy` writes the pushed keys to, as an absolute path.
    pub key_dir: String,
}

/// Several instances that would have had one alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The alias they share.
    pub alias: String,
    /// What each got instead: `(alias, instance id)`.
    pub resolved: Vec<(String, String)>,
}

/// The generated text and what was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generated {
    /// The Host blocks, sorted by alias, each followed by a blank line.
    pub text: String,
    /// `(alias, instance id)` of every block, in file order.
    pub hosts: Vec<(String, String)>,
    /// Aliases that had to be made unique.
    pub collisions: Vec<Collision>,
}

/// Why the blocks cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockError {
    /// A setting holds characters an ssh_config line cannot carry.
    #[error("{what} {value:?} cannot go into ssh_config: it holds a control character, a quote or a space")]
    Unwritable {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
    },
}

/// A Host block for each instance that is not terminated or shutting down.
pub(crate) fn generate(instances: &[(Scope, Instance)], opts: &Options) -> Result<Generated, BlockError> {
    writable("--user", opts.user.as_deref().unwrap_or("u"), false)?;
    writable("the broker path", &opts.broker, true)?;
    writable("the key directory", &opts.key_dir, true)?;
    let live: Vec<&(Scope, Instance)> = instances
        .iter()
        .filter(|(_, i)| !matches!(i.state, InstanceState::Terminated | InstanceState::ShuttingDown))
        .collect();
    for (scope, _) in &live {
        if let Some(p) = &scope.profile {
            writable("the profile", p, true)?;
        }
        writable("the Region", &scope.region, true)?;
    }
    let (aliases, collisions) = aliases(&live, opts.prefix_profile);
    let mut order: Vec<usize> = (0..live.len()).collect();
    order.sort_by(|&a, &b| aliases[a].cmp(&aliases[b]));
    let mut text = String::new();
    let mut hosts = Vec::new();
    for n in order {
        let (scope, instance) = live[n];
        write_block(&mut text, &aliases[n], scope, instance, opts);
        hosts.push((aliases[n].clone(), instance.id.clone()));
    }
    Ok(Generated { text, hosts, collisions })
}

fn write_block(out: &mut String, alias: &str, scope: &Scope, i: &Instance, opts: &Options) {
    let user = match (&opts.user, i.is_windows()) {
        (Some(u), _) => u.as_str(),
        (None, true) => "Administrator",
        (None, false) => "ec2-user",
    };
    let mut proxy = vec![word(&opts.broker), "proxy".to_string()];
    if let Some(p) = &scope.profile {
        proxy.extend(["--profile".to_string(), word(p)]);
    }
    proxy.extend(["--region".to_string(), word(&scope.region)]);
    if i.is_windows() {
        // Instance Connect does not push keys to Windows: the user's own key must work.
        proxy.push("--no-push".into());
    }
    proxy.push("%r@%h:%p".into());
    let _ = writeln!(out, "Host {alias}");
    let _ = writeln!(out, "    HostName {}", i.id);
    let _ = writeln!(out, "    HostKeyAlias {}", i.id);
    let _ = writeln!(out, "    User {user}");
    let _ = writeln!(out, "    ProxyCommand {}", proxy.join(" "));
    if !i.is_windows() {
        let _ = writeln!(out, "    IdentityFile {}/%r@%h", percent_escaped(&opts.key_dir));
        let _ = writeln!(out, "    IdentitiesOnly yes");
    }
    out.push('\n');
}

/// One alias per instance: its Name (sanitized, lower case) or its id, prefixed with the profile
/// on request; when several share one, `ALIAS.REGION` if that tells them apart, else `ALIAS.ID`.
fn aliases(live: &[&(Scope, Instance)], prefix_profile: bool) -> (Vec<String>, Vec<Collision>) {
    let base: Vec<String> = live
        .iter()
        .map(|(scope, i)| {
            let own = i.name.as_deref().and_then(sanitize).unwrap_or_else(|| i.id.clone());
            match prefix_profile {
                true => {
                    format!("{}.{own}", sanitize(scope.profile.as_deref().unwrap_or("default")).unwrap_or_default())
                }
                false => own,
            }
        })
        .collect();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (n, b) in base.iter().enumerate() {
        groups.entry(b).or_default().push(n);
    }
    let mut alias = base.clone();
    let mut collisions = Vec::new();
    for (shared, members) in &groups {
        if members.len() < 2 {
            continue;
        }
        let by_region: Vec<String> = members.iter().map(|&n| format!("{shared}.{}", live[n].0.region)).collect();
        let distinct = by_region.iter().collect::<HashSet<_>>().len() == members.len();
        for (k, &n) in members.iter().enumerate() {
            alias[n] = if distinct { by_region[k].clone() } else { format!("{shared}.{}", live[n].1.id) };
        }
        collisions.push(Collision {
            alias: shared.to_string(),
            resolved: members.iter().map(|&n| (alias[n].clone(), live[n].1.id.clone())).collect(),
        });
    }
    // A made-up alias can still meet a real Name (an instance named `web.eu-west-1`): number
    // the later ones, in a stable order.
    let mut order: Vec<usize> = (0..live.len()).collect();
    order.sort_by(|&a, &b| (&alias[a], &live[a].1.id).cmp(&(&alias[b], &live[b].1.id)));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for n in order {
        let count = seen.entry(alias[n].clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            alias[n] = format!("{}-{count}", alias[n]);
        }
    }
    (alias, collisions)
}

/// A Name as a Host alias: lower case (ssh lower-cases the host it is given before matching),
/// `[a-z0-9._-]` kept, runs of anything else one `-`; `None` if nothing is left.
pub(crate) fn sanitize(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.');
    (!out.is_empty()).then(|| out.to_string())
}

/// A word for the shell ssh runs the ProxyCommand with (single-quoted unless plain), with `%`
/// doubled (ssh expands `%` tokens in ProxyCommand).
fn word(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c));
    let quoted = if plain { text.to_string() } else { format!("'{}'", text.replace('\'', r"'\''")) };
    percent_escaped(&quoted)
}

fn percent_escaped(text: &str) -> String {
    text.replace('%', "%%")
}

/// Refuses control characters always, and `"` and (unless `spaces`) whitespace in a value that
/// goes into an ssh_config line.
fn writable(what: &'static str, value: &str, spaces: bool) -> Result<(), BlockError> {
    let bad = value.chars().any(|c| c.is_control() || c == '"' || (!spaces && c.is_whitespace()));
    match bad {
        true => Err(BlockError::Unwritable { what, value: value.to_string() }),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            user: None,
            prefix_profile: false,
            broker: "ec2-broker".into(),
            key_dir: "~/.cache/ec2-broker/keys".into(),
        }
    }

    fn inst(id: &str, name: Option<&str>, region: &str, profile: Option<&str>) -> (Scope, Instance) {
        let mut i = Instance::new(id, InstanceState::Running);
        i.name = name.map(str::to_string);
        (Scope { profile: profile.map(str::to_string), region: region.into() }, i)
    }

    #[test]
    fn one_block() {
        let g = generate(&[inst("i-0a1b2c3d4e5f60718", Some("Web 1"), "eu-west-1", Some("prod"))], &opts()).unwrap();
        assert_eq!(
            g.text,
            "Host web-1\n    HostName i-0a1b2c3d4e5f60718\n    HostKeyAlias i-0a1b2c3d4e5f60718\n    User ec2-user\n    \
             ProxyCommand ec2-broker proxy --profile prod --region eu-west-1 %r@%h:%p\n    \
             IdentityFile ~/.cache/ec2-broker/keys/%r@%h\n    IdentitiesOnly yes\n\n"
        );
        assert_eq!(g.hosts, [("web-1".to_string(), "i-0a1b2c3d4e5f60718".to_string())]);
        assert!(g.collisions.is_empty());
    }

    #[test]
    fn windows_gets_administrator_and_no_push() {
        let (scope, mut i) = inst("i-00000001", Some("win"), "eu-west-1", None);
        i.platform = Some("windows".into());
        let g = generate(&[(scope, i)], &opts()).unwrap();
        assert!(g.text.contains("    User Administrator\n"), "{}", g.text);
        assert!(g.text.contains("proxy --region eu-west-1 --no-push %r@%h:%p\n"), "{}", g.text);
        assert!(!g.text.contains("IdentityFile"));
        let forced = generate(
            &[inst("i-00000001", Some("a"), "eu-west-1", None)],
            &Options { user: Some("ubuntu".into()), ..opts() },
        );
        assert!(forced.unwrap().text.contains("    User ubuntu\n"));
    }

    #[test]
    fn collisions_are_made_unique_and_reported() {
        let g = generate(
            &[
                inst("i-00000001", Some("web"), "eu-west-1", None),
                inst("i-00000002", Some("WEB"), "us-east-1", None),
                inst("i-00000003", Some("db"), "eu-west-1", None),
                inst("i-00000004", Some("db"), "eu-west-1", None),
                inst("i-00000005", None, "eu-west-1", None),
                inst("i-00000006", Some("$(reboot)\nHost *"), "eu-west-1", None),
                inst("i-00000007", Some("***"), "eu-west-1", None),
            ],
            &opts(),
        )
        .unwrap();
        let aliases: Vec<&str> = g.hosts.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            aliases,
            [
                "db.i-00000003",
                "db.i-00000004",
                "i-00000005",
                "i-00000007",
                "reboot-host",
                "web.eu-west-1",
                "web.us-east-1"
            ]
        );
        assert_eq!(g.collisions.len(), 2);
        assert_eq!(g.collisions[1].alias, "web");
        assert_eq!(g.text.matches("\nHost ").count() + 1, 7, "no line injected by a Name:\n{}", g.text);
    }

    #[test]
    fn profiles_prefix_on_request_and_made_up_aliases_stay_unique() {
        let two = [
            inst("i-00000001", Some("web"), "eu-west-1", Some("prod")),
            inst("i-00000002", Some("web"), "eu-west-1", Some("dev")),
        ];
        let g = generate(&two, &Options { prefix_profile: true, ..opts() }).unwrap();
        let aliases: Vec<&str> = g.hosts.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(aliases, ["dev.web", "prod.web"]);
        assert!(g.collisions.is_empty());
        let g = generate(&two, &opts()).unwrap();
        assert_eq!(g.hosts.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["web.i-00000001", "web.i-00000002"]);
        let clash = [
            inst("i-00000001", Some("web"), "eu-west-1", None),
            inst("i-00000002", Some("web"), "us-east-1", None),
            inst("i-00000003", Some("web.eu-west-1"), "eu-west-1", None),
        ];
        let g = generate(&clash, &opts()).unwrap();
        let aliases: Vec<&str> = g.hosts.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(aliases, ["web.eu-west-1", "web.eu-west-1-2", "web.us-east-1"]);
    }

    #[test]
    fn odd_paths_and_profiles_are_quoted_and_bad_ones_refused() {
        let g = generate(
            &[inst("i-00000001", Some("a"), "eu-west-1", Some("my team"))],
            &Options { broker: "/opt/ec2 broker/100%/ec2-broker".into(), ..opts() },
        )
        .unwrap();
        assert!(
            g.text.contains(
                "ProxyCommand '/opt/ec2 broker/100%%/ec2-broker' proxy --profile 'my team' --region eu-west-1 %r@%h:%p"
            ),
            "{}",
            g.text
        );
        let bad = generate(&[inst("i-00000001", Some("a"), "eu-west-1", Some("p\nHost *"))], &opts());
        assert!(matches!(bad, Err(BlockError::Unwritable { what: "the profile", .. })));
        assert!(generate(&[], &Options { user: Some("a b".into()), ..opts() }).is_err());
    }

    #[test]
    fn terminated_instances_get_no_block() {
        let (scope, mut gone) = inst("i-00000002", Some("old"), "eu-west-1", None);
        gone.state = InstanceState::Terminated;
        let g = generate(&[inst("i-00000001", Some("web"), "eu-west-1", None), (scope, gone)], &opts()).unwrap();
        assert_eq!(g.hosts.len(), 1);
    }
}
