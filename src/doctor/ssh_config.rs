//! What `ssh -G HOST` says about a host: the user and port ssh would use, and the settings that
//! keep the broker's errors from the user. Pure: the caller runs ssh.

/// The settings of `ssh -G` output the doctor reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SshSettings {
    /// `user`.
    pub user: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `proxycommand` (absent when none is set).
    pub proxy_command: Option<String>,
    /// `controlmaster` (`false`, `true`, `auto`, `ask`, `autoask`).
    pub control_master: Option<String>,
    /// `controlpersist` (`no`, `yes`, or seconds).
    pub control_persist: Option<String>,
    /// `identityfile` lines, as ssh prints them (`~` and `%` tokens unexpanded).
    pub identity_files: Vec<String>,
}

impl SshSettings {
    /// The broker's key directory: the directory of an `IdentityFile DIR/%r@%h` (with `~` as
    /// `home`), where the broker writes its key files.
    pub(crate) fn key_dir(&self, home: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
        let dir = self.identity_files.iter().find_map(|f| f.strip_suffix("/%r@%h"))?;
        match dir.strip_prefix("~/") {
            Some(rest) => home.map(|h| h.join(rest)),
            None => Some(std::path::PathBuf::from(dir)),
        }
    }
}

/// Reads `ssh -G` output (one `keyword value` per line, keywords in lower case).
pub(crate) fn parse(text: &str) -> SshSettings {
    let mut s = SshSettings::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else { continue };
        let value = value.trim().to_string();
        match key {
            "user" => s.user = Some(value),
            "port" => s.port = value.parse().ok(),
            "proxycommand" if value != "none" => s.proxy_command = Some(value),
            "controlmaster" => s.control_master = Some(value),
            "controlpersist" => s.control_persist = Some(value),
            "identityfile" => s.identity_files.push(value),
            _ => {}
        }
    }
    s
}

/// What in these settings keeps `ssh HOST` from working with the broker, or hides its errors.
pub(crate) fn warnings(s: &SshSettings, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    match &s.proxy_command {
        Some(p) if p.contains("ec2-broker") => {}
        Some(p) => out.push(format!(
            "ssh's ProxyCommand for {host} does not run ec2-broker ({p}): plain `ssh {host}` does not use the broker"
        )),
        None => out.push(format!(
            "ssh's configuration has no ProxyCommand for {host}: plain `ssh {host}` does not use the broker; add \
             `ProxyCommand ec2-broker proxy %r@%h:%p` to a Host block that matches it (see `ec2-broker --help`)"
        )),
    }
    let master = s.control_master.as_deref().unwrap_or("false");
    let persist = s.control_persist.as_deref().unwrap_or("no");
    if !matches!(master, "false" | "no") && !matches!(persist, "no" | "false") {
        let persist = match persist.parse::<u64>() {
            Ok(secs) => format!("{secs} s"),
            Err(_) => persist.to_string(),
        };
        out.push(format!(
            "ssh shares connections to {host} through a master process (ControlMaster {master}, ControlPersist \
             {persist}), which sends the ProxyCommand's stderr to /dev/null: the broker's errors will not show. Set \
             EC2_BROKER_LOG_FILE (or add --log-file PATH to the ProxyCommand) to keep them, or run \
             `ssh -o ControlMaster=no {host}` to see them once"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_dir_from_identity_files() {
        let s = parse("identityfile ~/.ssh/id_ed25519\nidentityfile ~/.cache/ec2-broker/keys/%r@%h\n");
        let home = std::path::Path::new("/home/u");
        assert_eq!(s.key_dir(Some(home)), Some(home.join(".cache/ec2-broker/keys")));
        assert_eq!(parse("identityfile /k/%r@%h\n").key_dir(None), Some("/k".into()));
        assert_eq!(parse("identityfile ~/.ssh/id_rsa\n").key_dir(Some(home)), None);
    }

    const BROKER: &str =
        "user ec2-user\nport 2222\nproxycommand ec2-broker proxy %r@%h:%p\ncontrolmaster false\ncontrolpersist no\n";

    #[test]
    fn reads_user_port_and_proxy() {
        let s = parse(BROKER);
        assert_eq!(s.user.as_deref(), Some("ec2-user"));
        assert_eq!(s.port, Some(2222));
        assert_eq!(s.proxy_command.as_deref(), Some("ec2-broker proxy %r@%h:%p"));
        assert!(warnings(&s, "web-1").is_empty());
    }

    #[test]
    fn control_persist_hides_errors() {
        let s =
            parse(&BROKER.replace("controlmaster false", "controlmaster auto").replace("persist no", "persist 600"));
        let w = warnings(&s, "web-1");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "ssh shares connections to web-1 through a master process (ControlMaster auto, ControlPersist 600 s)"
            ),
            "{w:?}"
        );
        // A master without ControlPersist lives only as long as the first session: its stderr is the user's.
        let s = parse(&BROKER.replace("controlmaster false", "controlmaster auto"));
        assert!(warnings(&s, "web-1").is_empty());
    }

    #[test]
    fn no_broker_proxy() {
        let s = parse("user root\nport 22\n");
        assert!(warnings(&s, "web-1")[0].starts_with("ssh's configuration has no ProxyCommand for web-1"));
        let s = parse("proxycommand nc %h %p\n");
        assert!(warnings(&s, "web-1")[0].contains("does not run ec2-broker (nc %h %p)"));
        assert_eq!(parse("garbage\n\nport x\n"), SshSettings::default());
    }
}
