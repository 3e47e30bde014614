//! The optional settings file, `~/.config/ec2-broker/config` (or `EC2_BROKER_CONFIG`): defaults
//! for the proxy's route choice, below the command line and the environment.
//!
//! ```text
//! # Never try Session Manager; prefer the endpoint.
//! try-routes = eice, direct
//! address = private
//! ```
//!
//! Keys: `route`, `try-routes`, `address`, `key-placement`, `key-reuse` (`on`/`off`). Parsing is pure; [`apply`] fills in only what neither
//! the command line nor an environment variable set.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use clap::parser::ValueSource;

use crate::cli::{AddressKind, Cli, Command, KeyPlacement, RouteArg};

/// A line of the file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {problem}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and what is allowed.
    pub problem: String,
}

/// The settings the file gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `route`.
    pub route: Option<RouteArg>,
    /// `try-routes`.
    pub try_routes: Option<Vec<RouteArg>>,
    /// `address`.
    pub address: Option<AddressKind>,
    /// `key-placement`.
    pub key_placement: Option<Vec<KeyPlacement>>,
    /// `key-reuse`.
    pub key_reuse: Option<bool>,
}

/// Parses the file's text (`file` names it in errors).
pub fn parse(text: &str, file: &str) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    for (i, raw) in text.lines().enumerate() {
        let err = |problem: String| ConfigError { file: file.to_string(), line: i + 1, problem };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!("expected KEY = VALUE, found {line:?}")));
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "route" => s.route = Some(one::<RouteArg>(value).map_err(err)?),
            "try-routes" => {
                let routes =
                    value.split(',').map(|v| one::<RouteArg>(v.trim())).collect::<Result<Vec<_>, _>>().map_err(err)?;
                if let Some(bad) = routes.iter().find(|r| matches!(r, RouteArg::Auto | RouteArg::Serial)) {
                    return Err(err(format!(
                        "try-routes takes direct, eice and ssm, not {}",
                        bad.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
                    )));
                }
                s.try_routes = Some(routes);
            }
            "address" => s.address = Some(one::<AddressKind>(value).map_err(err)?),
            "key-placement" => {
                let how = value
                    .split(',')
                    .map(|v| one::<KeyPlacement>(v.trim()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                s.key_placement = Some(how);
            }
            "key-reuse" => {
                s.key_reuse = Some(match value.to_ascii_lowercase().as_str() {
                    "on" | "yes" | "true" | "1" => true,
                    "off" | "no" | "false" | "0" => false,
                    _ => return Err(err(format!("key-reuse is on or off, not {value:?}"))),
                });
            }
            other => {
                return Err(err(format!(
                    "unknown setting {other:?}: the settings are route, try-routes, address, key-placement, key-reuse"
                )));
            }
        }
    }
    Ok(s)
}

fn one<T: ValueEnum>(value: &str) -> Result<T, String> {
    T::from_str(value, true).map_err(|_| {
        let allowed: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        format!("{value:?} is not one of {}", allowed.join(", "))
    })
}

/// Where the file is: `EC2_BROKER_CONFIG`, else `~/.config/ec2-broker/config`.
pub fn path() -> Option<PathBuf> {
    // An empty value means unset, as for every other setting.
    match std::env::var_os("EC2_BROKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::config_dir().map(|d| d.join("ec2-broker").join("config")),
    }
}

/// Reads the file at `path` (absent: no settings).
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(ConfigError { file: path.display().to_string(), line: 0, problem: e.to_string() }),
    }
}

/// Fills the proxy's options from `settings` where the command line and the environment left
/// their defaults (`matches` tells which).
pub fn apply(cli: &mut Cli, matches: &clap::ArgMatches, settings: &Settings) {
    let (Command::Proxy(args), Some(("proxy", sub))) = (&mut cli.command, matches.subcommand()) else { return };
    let defaulted = |id: &str| matches!(sub.value_source(id), Some(ValueSource::DefaultValue) | None);
    if let Some(route) = settings.route
        && defaulted("route")
    {
        args.route = route;
    }
    if let Some(routes) = &settings.try_routes
        && defaulted("try_routes")
    {
        args.try_routes = routes.clone();
    }
    if let Some(address) = settings.address
        && defaulted("address")
    {
        args.address = address;
    }
    if let Some(how) = &settings.key_placement
        && defaulted("key_placement")
    {
        args.key_placement = how.clone();
    }
    if let Some(reuse) = settings.key_reuse
        && defaulted("key_reuse")
    {
        args.key_reuse = reuse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn parses_settings_and_comments() {
        let s = parse("# mine\ntry-routes = eice, direct\n\naddress=public # from home\nroute = auto\n", "c").unwrap();
        assert_eq!(s.try_routes, Some(vec![RouteArg::Eice, RouteArg::Direct]));
        assert_eq!(s.address, Some(AddressKind::Public));
        assert_eq!(s.route, Some(RouteArg::Auto));
        let k = parse("key-placement = run-command, instance-connect\n", "c").unwrap();
        assert_eq!(k.key_placement, Some(vec![KeyPlacement::RunCommand, KeyPlacement::InstanceConnect]));
        assert!(parse("key-placement = carrier-pigeon\n", "/c").unwrap_err().problem.contains("instance-connect"));
    }

    #[test]
    fn bad_lines_say_where_and_what() {
        let e = parse("route = auto\ntry-routes = direct, carrier-pigeon\n", "/c").unwrap_err();
        assert_eq!(e.to_string(), "/c:2: \"carrier-pigeon\" is not one of direct, ssm, eice, serial, auto");
        let e = parse("colour = blue\n", "/c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/c:1: unknown setting \"colour\": the settings are route, try-routes, address, key-placement, key-reuse"
        );
        assert_eq!(parse("just words\n", "/c").unwrap_err().line, 1);
        assert!(parse("try-routes = serial\n", "/c").unwrap_err().problem.contains("not serial"));
    }

    fn cli(args: &[&str], settings: &Settings) -> Cli {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        apply(&mut cli, &matches, settings);
        cli
    }

    #[test]
    fn the_command_line_wins() {
        let settings = parse("try-routes = ssm\naddress = public\n", "c").unwrap();
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "web-1"], &settings).command else { panic!() };
        assert_eq!((p.try_routes, p.address), (vec![RouteArg::Ssm], AddressKind::Public));
        let Command::Proxy(p) =
            cli(&["ec2-broker", "proxy", "--try-routes", "direct", "--address", "private", "web-1"], &settings).command
        else {
            panic!()
        };
        assert_eq!((p.try_routes, p.address), (vec![RouteArg::Direct], AddressKind::Private));
        // key-placement is read the way try-routes is.
        let settings = parse("key-placement = run-command\n", "c").unwrap();
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "web-1"], &settings).command else { panic!() };
        assert_eq!(p.key_placement, [KeyPlacement::RunCommand]);
        let Command::Proxy(p) =
            cli(&["ec2-broker", "proxy", "--key-placement", "instance-connect", "web-1"], &settings).command
        else {
            panic!()
        };
        assert_eq!(p.key_placement, [KeyPlacement::InstanceConnect]);
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "web-1"], &Settings::default()).command else { panic!() };
        assert_eq!(p.key_placement, [KeyPlacement::InstanceConnect, KeyPlacement::RunCommand]);
    }

    // See: issue 19 (bursts)
    #[test]
    fn key_reuse_is_on_unless_turned_off() {
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "web-1"], &Settings::default()).command else { panic!() };
        assert!(p.key_reuse && !p.no_key_reuse);
        let off = parse("key-reuse = off\n", "c").unwrap();
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "web-1"], &off).command else { panic!() };
        assert!(!p.key_reuse);
        let Command::Proxy(p) = cli(&["ec2-broker", "proxy", "--no-key-reuse", "web-1"], &Settings::default()).command
        else {
            panic!()
        };
        assert!(p.no_key_reuse);
        assert!(parse("key-reuse = sometimes\n", "/c").unwrap_err().problem.contains("on or off"));
    }
}
