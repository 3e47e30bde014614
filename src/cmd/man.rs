//! `ec2-broker man`: the manual page ec2-broker(1) in roff, from the same clap definitions as
//! `--help` (clap_mangen), with every subcommand's synopsis, description and options in one
//! page rather than a page per subcommand, and the files and environment the broker reads.

use std::io;

use anyhow::Context;
use clap::{Command, CommandFactory};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::output;

/// Prints the page.
pub(crate) fn run() -> anyhow::Result<()> {
    let page = page().context("rendering the manual page")?;
    output::print(&page).context("writing the manual page")
}

/// The whole page.
pub(crate) fn page() -> io::Result<String> {
    let mut cmd = Cli::command();
    // Builds the subcommands' bin names (`ec2-broker known-hosts audit`) for their synopses.
    cmd.build();
    let man = Man::new(cmd.clone()).source(format!("ec2-broker {}", env!("CARGO_PKG_VERSION"))).manual("User Commands");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut page = String::from_utf8_lossy(&out).into_owned();
    page += ".SH COMMANDS\n";
    for sub in visible(&cmd) {
        commands(&mut page, sub)?;
    }
    page += TRAILER;
    Ok(one_preamble(&page))
}

/// A subcommand's synopsis, description and options under its full name, then its own
/// subcommands.
fn commands(page: &mut String, cmd: &Command) -> io::Result<()> {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    page.push_str(&format!(".SS \"{name}\"\n"));
    let man = Man::new(cmd.clone());
    let mut parts = Vec::new();
    for render in [Man::render_synopsis_section, Man::render_description_section] {
        let mut buf = Vec::new();
        render(&man, &mut buf)?;
        parts.push(without_heading(&String::from_utf8_lossy(&buf)));
    }
    page.push_str(&parts.join(".PP\n"));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let mut buf = Vec::new();
        man.render_options_section(&mut buf)?;
        page.push_str(".PP\nOptions:\n");
        page.push_str(&without_heading(&String::from_utf8_lossy(&buf)));
    }
    for sub in visible(cmd) {
        commands(page, sub)?;
    }
    Ok(())
}

/// The subcommands a reader can run (not clap's `help`, not hidden ones).
fn visible(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// A rendered section without its `.SH` line (it becomes part of a `.SS` subsection).
fn without_heading(roff: &str) -> String {
    roff.lines().filter(|l| !l.starts_with(".SH ")).map(|l| format!("{l}\n")).collect()
}

/// clap_mangen starts every rendered part with the two lines that define `\*(Aq`: keep the first.
fn one_preamble(page: &str) -> String {
    let preamble = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];
    let mut seen = false;
    let mut out = String::new();
    for line in page.lines() {
        if preamble.contains(&line) {
            if line == preamble[1] {
                if seen {
                    continue;
                }
                seen = true;
            } else if seen {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Files, environment, exit status (hand-written roff; options are `\-` escaped).
const TRAILER: &str = r#".SH FILES
.TP
~/.cache/ec2\-broker/instances.json
Instance lookups, reused for 5 minutes; filled by connections and by \fBls\fR; host names complete from it.
.TP
~/.cache/ec2\-broker/routes.json
The route that last worked for each instance (\fB\-\-route auto\fR tries it first).
.TP
~/.cache/ec2\-broker/keys/
Short\-lived private keys, one per \fIuser\fR@\fIhost\fR: ssh_config's IdentityFile names them.
.TP
~/.cache/ec2\-broker/credentials/
Credentials of MFA roles (\fBlogin\fR), mode 0600.
.TP
~/.config/ec2\-broker/config
Settings: route, try\-routes, address (or the file EC2_BROKER_CONFIG names).
.SH ENVIRONMENT
.TP
EC2_BROKER_LOG
info, debug or trace: like \fB\-v\fR, \fB\-vv\fR, \fB\-vvv\fR, without editing ssh_config.
.TP
AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, AWS_CA_BUNDLE
Read as the AWS CLI reads them.
.SH EXIT STATUS
0 on success; 1 on failure (for \fBdoctor\fR: no route works; for \fBknown\-hosts audit\fR: findings; for \fBls\fR: a Region could not be listed); 2 on a usage error (and for \fBknown\-hosts audit\fR, an error).
.SH SEE ALSO
\fBssh\fR(1), \fBssh_config\fR(5), \fBscp\fR(1), \fBrsync\fR(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_subsection() {
        let page = page().unwrap();
        for name in [
            "proxy",
            "console",
            "shell",
            "doctor",
            "login",
            "ls",
            "ssh-config",
            "completions",
            "man",
            "known-hosts audit",
            "known-hosts pin",
        ] {
            assert!(page.contains(&format!(".SS \"ec2-broker {name}\"\n")), "{name}");
        }
        assert!(!page.contains("__complete-hosts"));
        assert!(page.contains("\n.TH ec2-broker 1 "), "{}", &page[..120]);
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
    }
}
