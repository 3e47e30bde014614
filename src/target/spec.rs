//! `HostSpec`: what the user typed after `proxy`, parsed without touching the network.
//!
//! Accepted forms (`USER@` and `:PORT` optional everywhere):
//! - an instance id: `i-0123456789abcdef0`
//! - a `Name` tag value, with `*` and `?` wildcards: `web-1`, `web-*`
//! - any tag: `tag:Role=db`
//! - an IPv4 address, private or public: `10.0.1.23`
//!
//! A trailing `.ec2` (for `Host *.ec2` blocks in ssh_config) is removed, and a trailing
//! `.<region>` (e.g. `web-1.eu-west-1`) selects the Region.

use std::fmt;
use std::net::Ipv4Addr;

/// Default SSH port when the spec names none.
pub(crate) const DEFAULT_PORT: u16 = 22;

/// A parsed host argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSpec {
    /// OS user on the instance (ssh's `%r`), if given.
    pub user: Option<String>,
    /// Which instance(s) the spec selects.
    pub target: Target,
    /// Region named in the host, if any (`web-1.eu-west-1`).
    pub region: Option<String>,
    /// TCP port on the instance.
    pub port: u16,
}

/// How a spec selects an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An exact instance id.
    InstanceId(String),
    /// A `Name` tag value, possibly with `*`/`?` wildcards.
    Name(String),
    /// Any tag `key=value` (the value may hold wildcards).
    Tag {
        /// Tag key.
        key: String,
        /// Tag value pattern.
        value: String,
    },
    /// An IPv4 address (matched against private, then public addresses).
    Address(Ipv4Addr),
}

/// Why a host argument could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostSpecError {
    /// Nothing was given.
    #[error("empty host: give an instance id, a Name tag, tag:KEY=VALUE or an IP address")]
    Empty,
    /// `user@` with an empty user.
    #[error("empty user in {0:?}: write USER@HOST or leave out the @")]
    EmptyUser(String),
    /// The port is not a number from 1 to 65535.
    #[error("bad port {port:?} in {spec:?}: the port must be a number from 1 to 65535")]
    BadPort {
        /// The whole spec.
        spec: String,
        /// The port text.
        port: String,
    },
    /// `tag:` without `KEY=VALUE`.
    #[error("bad tag selector {0:?}: write tag:KEY=VALUE, e.g. tag:Role=web")]
    BadTag(String),
    /// Looks like an instance id but is not one.
    #[error("bad instance id {0:?}: an instance id is i- followed by 8 or 17 hex digits")]
    BadInstanceId(String),
    /// A character that no EC2 name or address can hold (control characters, spaces...).
    #[error("bad character {ch:?} in host {spec:?}")]
    BadChar {
        /// The whole spec.
        spec: String,
        /// The offending character.
        ch: char,
    },
}

impl HostSpec {
    /// Parses `[USER@]HOST[:PORT]`.
    ///
    /// ```text
    /// let spec = HostSpec::parse("ec2-user@web-1.eu-west-1:2222").unwrap();   (tested below)
    /// assert_eq!(spec.user.as_deref(), Some("ec2-user"));
    /// assert_eq!(spec.target, Target::Name("web-1".into()));
    /// assert_eq!(spec.region.as_deref(), Some("eu-west-1"));
    /// assert_eq!(spec.port, 2222);
    /// ```
    pub(crate) fn parse(input: &str) -> Result<Self, HostSpecError> {
        Self::parse_with_suffix(input, None)
    }

    /// [`HostSpec::parse`], removing `suffix` (e.g. `.prod`) from the host first.
    pub(crate) fn parse_with_suffix(input: &str, suffix: Option<&str>) -> Result<Self, HostSpecError> {
        if let Some(ch) = input.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(HostSpecError::BadChar { spec: input.into(), ch });
        }
        // The user may itself hold '@' (Instance Connect allows it), so split at the last one.
        let (user, rest) = match input.rsplit_once('@') {
            Some(("", _)) => return Err(HostSpecError::EmptyUser(input.into())),
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, input),
        };
        let (host, port) = split_port(input, rest)?;
        if host.is_empty() {
            return Err(HostSpecError::Empty);
        }
        let host = suffix.filter(|s| !s.is_empty()).and_then(|s| host.strip_suffix(s)).unwrap_or(host);
        let host = host.strip_suffix(".ec2").unwrap_or(host);
        let (host, region) = split_region(host);
        if host.is_empty() {
            return Err(HostSpecError::Empty);
        }
        Ok(HostSpec { user, target: Target::parse(host)?, region, port })
    }
}

impl Target {
    fn parse(host: &str) -> Result<Self, HostSpecError> {
        if let Some(tag) = host.strip_prefix("tag:") {
            return match tag.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok(Target::Tag { key: k.into(), value: v.into() }),
                _ => Err(HostSpecError::BadTag(host.into())),
            };
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(Target::Address(ip));
        }
        if let Some(hex) = host.strip_prefix("i-") {
            let is_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
            if is_hex && (hex.len() == 8 || hex.len() == 17) {
                return Ok(Target::InstanceId(host.to_ascii_lowercase()));
            }
            // "i-web" could be a Name tag; only hex-only strings are taken as bad ids.
            if is_hex {
                return Err(HostSpecError::BadInstanceId(host.into()));
            }
        }
        Ok(Target::Name(host.into()))
    }
}

fn split_port<'a>(spec: &str, rest: &'a str) -> Result<(&'a str, u16), HostSpecError> {
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Ok((rest, DEFAULT_PORT));
    };
    // `tag:KEY=VALUE` has a colon that is not a port separator.
    if rest.starts_with("tag:") && !host.contains('=') {
        return Ok((rest, DEFAULT_PORT));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host, p)),
        _ => Err(HostSpecError::BadPort { spec: spec.into(), port: port.into() }),
    }
}

/// Splits a trailing `.REGION` when it looks like an AWS Region name (`eu-west-1`, `us-gov-west-1`).
fn split_region(host: &str) -> (&str, Option<String>) {
    match host.rsplit_once('.') {
        Some((name, region)) if is_region(region) && !name.is_empty() => (name, Some(region.into())),
        _ => (host, None),
    }
}

/// Whether `s` has the shape of an AWS Region name.
pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    (3..=4).contains(&parts.len())
        && first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::InstanceId(id) => f.write_str(id),
            Target::Name(n) => write!(f, "Name={n}"),
            Target::Tag { key, value } => write!(f, "tag:{key}={value}"),
            Target::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/host_spec.rs`), also run by a unit test:
/// parsing never panics, and what parses keeps its invariants.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = HostSpec::parse(text) {
        assert!(spec.port > 0);
        assert!(spec.user.as_deref().is_none_or(|u| !u.is_empty()));
        match &spec.target {
            Target::InstanceId(id) => assert!(id.starts_with("i-") && id.len() >= 10),
            Target::Name(n) => assert!(!n.is_empty()),
            Target::Tag { key, value } => assert!(!key.is_empty() && !value.is_empty()),
            Target::Address(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example() {
        let spec = HostSpec::parse("ec2-user@web-1.eu-west-1:2222").unwrap();
        assert_eq!(spec.user.as_deref(), Some("ec2-user"));
        assert_eq!(spec.target, Target::Name("web-1".into()));
        assert_eq!(spec.region.as_deref(), Some("eu-west-1"));
        assert_eq!(spec.port, 2222);
    }

    fn ok(s: &str) -> HostSpec {
        HostSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn forms() {
        type Case<'a> = (&'a str, Option<&'a str>, Target, Option<&'a str>, u16);
        let cases: &[Case<'_>] = &[
            ("i-0123456789abcdef0", None, Target::InstanceId("i-0123456789abcdef0".into()), None, 22),
            ("i-0123ABCD", None, Target::InstanceId("i-0123abcd".into()), None, 22),
            ("root@i-0123abcd:2200", Some("root"), Target::InstanceId("i-0123abcd".into()), None, 2200),
            ("web-1", None, Target::Name("web-1".into()), None, 22),
            ("web-*.ec2", None, Target::Name("web-*".into()), None, 22),
            ("ec2-user@web-1.eu-west-1:22", Some("ec2-user"), Target::Name("web-1".into()), Some("eu-west-1"), 22),
            ("db.us-gov-west-1.ec2", None, Target::Name("db".into()), Some("us-gov-west-1"), 22),
            ("web.example.com", None, Target::Name("web.example.com".into()), None, 22),
            ("tag:Role=db", None, Target::Tag { key: "Role".into(), value: "db".into() }, None, 22),
            ("u@tag:Role=db:2222", Some("u"), Target::Tag { key: "Role".into(), value: "db".into() }, None, 2222),
            ("10.0.1.23", None, Target::Address("10.0.1.23".parse().unwrap()), None, 22),
            ("a@b@10.0.1.23:9", Some("a@b"), Target::Address("10.0.1.23".parse().unwrap()), None, 9),
            ("i-web", None, Target::Name("i-web".into()), None, 22),
        ];
        for (input, user, target, region, port) in cases {
            let spec = ok(input);
            assert_eq!(spec.user.as_deref(), *user, "{input}");
            assert_eq!(&spec.target, target, "{input}");
            assert_eq!(spec.region.as_deref(), *region, "{input}");
            assert_eq!(spec.port, *port, "{input}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, HostSpecError)] = &[
            ("", HostSpecError::Empty),
            ("@web", HostSpecError::EmptyUser("@web".into())),
            ("web:0", HostSpecError::BadPort { spec: "web:0".into(), port: "0".into() }),
            ("web:ssh", HostSpecError::BadPort { spec: "web:ssh".into(), port: "ssh".into() }),
            ("web:70000", HostSpecError::BadPort { spec: "web:70000".into(), port: "70000".into() }),
            ("tag:Role", HostSpecError::BadTag("tag:Role".into())),
            ("tag:=x", HostSpecError::BadTag("tag:=x".into())),
            ("i-0123", HostSpecError::BadInstanceId("i-0123".into())),
            ("web 1", HostSpecError::BadChar { spec: "web 1".into(), ch: ' ' }),
            ("u@", HostSpecError::Empty),
            (".ec2", HostSpecError::Empty),
        ];
        for (input, want) in cases {
            assert_eq!(HostSpec::parse(input).as_ref(), Err(want), "{input}");
        }
    }

    #[test]
    fn custom_suffix() {
        let spec = HostSpec::parse_with_suffix("u@i-0123456789abcdef0.prod:22", Some(".prod")).unwrap();
        assert_eq!(spec.target, Target::InstanceId("i-0123456789abcdef0".into()));
        let spec = HostSpec::parse_with_suffix("db-1.prod", Some(".prod")).unwrap();
        assert_eq!(spec.target, Target::Name("db-1".into()));
        let spec = HostSpec::parse_with_suffix("db-1.prod", None).unwrap();
        assert_eq!(spec.target, Target::Name("db-1.prod".into()));
    }

    #[test]
    fn regions() {
        for r in ["eu-west-1", "us-gov-west-1", "ap-southeast-7", "cn-north-1"] {
            assert!(is_region(r), "{r}");
        }
        for r in ["ec2", "web-1", "eu-west", "x-y-1", "eu-west-1a", "com"] {
            assert!(!is_region(r), "{r}");
        }
    }

    #[test]
    fn random_inputs_keep_the_invariants() {
        // 20 000 strings over an alphabet rich in separators, with a fixed seed.
        let alphabet: Vec<char> = "i-0aF9@:.=*?tag:ec2 eu-west-1\u{0}é[]".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let s: String = (0..len).map(|i| alphabet[((x >> (i % 60)) as usize + i * 7) % alphabet.len()]).collect();
            fuzz_parse(s.as_bytes());
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in ["@", ":", "@:", "tag:", "tag:=", "a:b:c", "[::1]:22", "i-", "\u{0}", "é@ü:1", "...", ".eu-west-1"] {
            let _ = HostSpec::parse(s);
        }
    }
}
