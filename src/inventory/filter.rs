//! `ls` FILTER and `ssh-config --filter`: the host forms the proxy understands (an instance id,
//! a Name with `*` and `?` wildcards, `tag:KEY=VALUE`, an IPv4 address), matched here against
//! listed instances instead of sent to DescribeInstances, so one listing serves every filter.

use crate::target::instance::Instance;
use crate::target::spec::{HostSpec, HostSpecError, Target};

/// A filter that is not one of the host forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    /// The text does not parse as a host.
    #[error("bad filter {text:?}: {source}")]
    Host {
        /// What was given.
        text: String,
        /// Why it does not parse.
        source: HostSpecError,
    },
    /// A user or port, which select nothing.
    #[error(
        "bad filter {0:?}: a filter is an instance id, a Name, tag:KEY=VALUE or an address, without USER@ or :PORT"
    )]
    UserOrPort(String),
}

/// Instances matching any of the filters (every instance when there are none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    targets: Vec<Target>,
}

impl Filters {
    /// Parses each filter; a `.REGION` suffix is not allowed (use `--regions`).
    pub(crate) fn parse(texts: &[String]) -> Result<Filters, FilterError> {
        let mut targets = Vec::new();
        for text in texts {
            let spec = HostSpec::parse(text).map_err(|source| FilterError::Host { text: text.clone(), source })?;
            if spec.user.is_some()
                || spec.port != crate::target::spec::DEFAULT_PORT
                || text.contains(':') && !text.starts_with("tag:")
            {
                return Err(FilterError::UserOrPort(text.clone()));
            }
            // `web-1.eu-west-1` parses with a Region: as a filter, the whole text is the Name.
            let target = match (spec.region, spec.target) {
                (Some(_), Target::Name(_)) => Target::Name(text.clone()),
                (_, target) => target,
            };
            targets.push(target);
        }
        Ok(Filters { targets })
    }

    /// Whether `instance` is selected.
    pub(crate) fn matches(&self, instance: &Instance) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| target_matches(t, instance))
    }
}

/// Whether `target` selects `instance`, as DescribeInstances' filters would.
pub(crate) fn target_matches(target: &Target, instance: &Instance) -> bool {
    match target {
        Target::InstanceId(id) => instance.id.eq_ignore_ascii_case(id),
        Target::Name(pattern) => instance.name.as_deref().is_some_and(|n| wildcard(pattern, n)),
        Target::Tag { key, value } => instance.tags.iter().any(|(k, v)| k == key && wildcard(value, v)),
        Target::Address(ip) => instance.private_ip == Some(*ip) || instance.public_ip == Some(*ip),
    }
}

/// EC2 filter wildcards: `*` any run of characters, `?` exactly one; case-sensitive.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    crate::text::wildcard(&p, &t, '*', '?')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::instance::InstanceState;

    fn inst() -> Instance {
        let mut i = Instance::new("i-0a1b2c3d4e5f60718", InstanceState::Running);
        i.name = Some("web-1".into());
        i.tags = vec![("Name".into(), "web-1".into()), ("Role".into(), "web".into())];
        i.private_ip = Some("10.0.1.5".parse().unwrap());
        i.public_ip = Some("203.0.113.7".parse().unwrap());
        i
    }

    #[test]
    fn each_host_form_selects() {
        let i = inst();
        let yes =
            |f: &[&str]| Filters::parse(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap().matches(&i);
        assert!(yes(&[]), "no filter: everything");
        for f in [
            "web-1",
            "web-*",
            "w?b-1",
            "*",
            "i-0a1b2c3d4e5f60718",
            "tag:Role=web",
            "tag:Role=w*",
            "10.0.1.5",
            "203.0.113.7",
        ] {
            assert!(yes(&[f]), "{f}");
        }
        for f in ["web-2", "Web-1", "db-*", "i-0a1b2c3d4e5f60719", "tag:Role=db", "tag:Team=web", "10.0.1.6"] {
            assert!(!yes(&[f]), "{f}");
        }
        assert!(yes(&["db-*", "web-1"]), "any of several");
    }

    #[test]
    fn users_ports_and_bad_text_are_refused() {
        let parse = |f: &str| Filters::parse(&[f.to_string()]);
        assert_eq!(parse("ec2-user@web-1"), Err(FilterError::UserOrPort("ec2-user@web-1".into())));
        assert_eq!(parse("web-1:2222"), Err(FilterError::UserOrPort("web-1:2222".into())));
        assert!(matches!(parse("tag:Role"), Err(FilterError::Host { .. })));
        assert!(matches!(parse("web 1"), Err(FilterError::Host { .. })));
        assert!(parse("tag:Role=db").is_ok());
    }

    #[test]
    fn region_suffix_is_part_of_the_name() {
        let mut i = inst();
        i.name = Some("web-1.eu-west-1".into());
        assert!(Filters::parse(&["web-1.eu-west-1".into()]).unwrap().matches(&i));
    }

    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("*b*", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("**x", "yyx", true),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} vs {t}");
        }
    }
}
