//! `ec2-broker completions bash|zsh|fish`: clap_complete's script for the same definitions as
//! `--help`, plus host completion from the lookup cache through the hidden `__complete-hosts`.
//!
//! Cached names come from EC2 tags, which anyone who can tag an instance controls: the scripts
//! never evaluate them (bash matches them as plain strings instead of `compgen -W`, which would
//! expand `$(…)`), and `__complete-hosts` prints only names made of `[A-Za-z0-9._:@=+-]`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Context;
use clap::{Command, CommandFactory, ValueHint};

use crate::cache::lookup::LookupCache;
use crate::cli::{Cli, CompletionShell};
use crate::output;

/// The program name the scripts complete.
const BIN: &str = "ec2-broker";
/// The subcommands whose `host` argument names an instance.
const HOST_COMMANDS: [&[&str]; 5] = [&["proxy"], &["console"], &["shell"], &["doctor"], &["known-hosts", "pin"]];

/// Prints the script for `shell`.
pub(crate) fn run(shell: CompletionShell) -> anyhow::Result<()> {
    output::print(&script(shell)).context("writing the completion script")
}

/// Prints the lookup cache's host names and instance ids, one a line, sorted.
pub(crate) fn hosts() -> anyhow::Result<()> {
    let Some(file) = super::ls::lookup_cache_file() else { return Ok(()) };
    let cache = LookupCache::parse(&super::proxy::read_cache(Some(&file)));
    let mut out = String::new();
    for host in host_words(&cache) {
        let _ = writeln!(out, "{host}");
    }
    output::print(&out).context("writing the host names")
}

/// Names and ids of the cached instances that are safe to offer.
pub(crate) fn host_words(cache: &LookupCache) -> BTreeSet<String> {
    let safe = |w: &str| {
        !w.is_empty() && !w.starts_with('-') && w.chars().all(|c| c.is_ascii_alphanumeric() || "._:@=+-".contains(c))
    };
    cache.instances().flat_map(|i| [i.name.clone(), Some(i.id.clone())]).flatten().filter(|w| safe(w)).collect()
}

/// The whole script for `shell`.
pub(crate) fn script(shell: CompletionShell) -> String {
    let mut cmd = completion_command();
    let mut buf = Vec::new();
    let generator = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, BIN, &mut buf);
    let generated = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        CompletionShell::Bash => bash(&generated, &cmd),
        CompletionShell::Zsh => zsh(&generated),
        CompletionShell::Fish => fish(&generated),
    }
}

/// The clap definitions as the scripts should see them: without hidden subcommands (clap_complete
/// lists them for bash and zsh), and with the host arguments marked as host names.
fn completion_command() -> Command {
    let cli = Cli::command();
    let hosts = |c: Command| c.mut_arg("host", |a| a.value_hint(ValueHint::Hostname));
    // Rebuilt in the same order (`mut_subcommand` would move the changed ones to the end).
    let subcommands = cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned().map(|sub| {
        let name = sub.get_name().to_string();
        match HOST_COMMANDS.iter().find(|p| p[0] == name) {
            Some([_]) => hosts(sub),
            Some([_, inner]) => sub.mut_subcommand(*inner, hosts),
            _ => sub,
        }
    });
    let mut cmd = Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about(cli.get_about().cloned().unwrap_or_default())
        .subcommand_required(true)
        .args(cli.get_arguments().cloned())
        .subcommands(subcommands.collect::<Vec<_>>());
    cmd.build();
    cmd
}

/// clap_complete's bash script, with its arms for subcommands spelled as its dispatch loop spells
/// them (clap_complete 4.6 escapes a hyphenated program name two ways, so nothing completes after
/// a subcommand: clap-rs/clap#6421), and host completion wrapped around it.
fn bash(generated: &str, cmd: &Command) -> String {
    let fixed = generated.replace(
        &format!("{}__subcmd__", BIN.replace('-', "__subcmd__")),
        &format!("{}__subcmd__", BIN.replace('-', "__")),
    );
    let function = format!("_{}", BIN.replace('-', "__"));
    let mut cases = String::new();
    for path in HOST_COMMANDS {
        let mut sub = cmd;
        for name in path {
            match sub.find_subcommand(name) {
                Some(s) => sub = s,
                None => continue,
            }
        }
        let valued: Vec<String> = sub
            .get_arguments()
            .filter(|a| !a.is_positional() && a.get_num_args().is_some_and(|n| n.takes_values()))
            .flat_map(|a| {
                let longs = a.get_long_and_visible_aliases().unwrap_or_default().into_iter().map(|l| format!("--{l}"));
                let shorts = a.get_short_and_visible_aliases().unwrap_or_default().into_iter().map(|s| format!("-{s}"));
                longs.chain(shorts).collect::<Vec<_>>()
            })
            .collect();
        let _ = write!(cases, "\n        \"{}\") valued=\" {} \" ;;", path.join(" "), valued.join(" "));
    }
    format!(
        r#"{fixed}
# Host arguments complete from the broker's lookup cache. The names are compared as plain
# strings and never evaluated (they come from EC2 tags).
_ec2_broker_hosts() {{
    local cur="$1" host
    while IFS= read -r host; do
        [[ $host == "$cur"* ]] && COMPREPLY+=("$host")
    done < <(command {BIN} __complete-hosts 2>/dev/null)
}}

_ec2_broker_complete() {{
    {function} "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path="" word valued="" i
    [[ $cur == -* ]] && return 0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in
            -*) ;;
            *) [[ -z $path || $path == known-hosts ]] && path="${{path:+$path }}$word" ;;
        esac
    done
    case "$path" in{cases}
        *) return 0 ;;
    esac
    [[ $valued == *" $prev "* ]] && return 0
    COMPREPLY=()
    _ec2_broker_hosts "$cur"
    return 0
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _ec2_broker_complete -o nosort -o bashdefault -o default {BIN}
else
    complete -F _ec2_broker_complete -o bashdefault -o default {BIN}
fi
"#
    )
}

/// clap_complete's zsh script with `_hosts` (ssh's known hosts) replaced by the lookup cache.
fn zsh(generated: &str) -> String {
    let helper = format!(
        r#"
# Host arguments complete from the broker's lookup cache (split on newlines, never evaluated).
(( $+functions[_ec2_broker_hosts] )) ||
_ec2_broker_hosts() {{
    local -a hosts
    hosts=(${{(f)"$(command {BIN} __complete-hosts 2>/dev/null)"}})
    compadd -a hosts
}}
"#
    );
    let body = generated.replace(":_hosts'", ":_ec2_broker_hosts'");
    match body.split_once('\n') {
        Some((first, rest)) => format!("{first}\n{helper}{rest}"),
        None => body,
    }
}

/// clap_complete's fish script (which completes options only) and host arguments from the
/// lookup cache (fish splits the output into lines and does not evaluate them).
fn fish(generated: &str) -> String {
    let fish_fn = format!("__fish_{}", BIN.replace('-', "_"));
    let mut out = generated.to_string();
    out += "\n# Host arguments complete from the broker's lookup cache.\n";
    for path in HOST_COMMANDS {
        let condition = match path {
            [one] => format!("{fish_fn}_using_subcommand {one}"),
            [outer, inner] => format!("{fish_fn}_using_subcommand {outer}; and __fish_seen_subcommand_from {inner}"),
            _ => continue,
        };
        let _ = writeln!(
            out,
            "complete -c {BIN} -n \"{condition}; and not string match -q -- '-*' (commandline -ct)\" -f -a \"(command {BIN} __complete-hosts 2>/dev/null)\""
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::instance::{Instance, InstanceState};

    #[test]
    fn only_plain_names_are_offered() {
        let mut cache = LookupCache::default();
        for (n, name) in ["web-1", "$(touch pwned)", "a b", "-rf", "db.eu-west-1", "tag:Role=db"].iter().enumerate() {
            let mut i = Instance::new(format!("i-0000000{n}"), InstanceState::Running);
            i.name = Some(name.to_string());
            cache.put(&format!("k{n}"), i, 1);
        }
        let words: Vec<String> = host_words(&cache).into_iter().collect();
        assert_eq!(
            words,
            [
                "db.eu-west-1",
                "i-00000000",
                "i-00000001",
                "i-00000002",
                "i-00000003",
                "i-00000004",
                "i-00000005",
                "tag:Role=db",
                "web-1"
            ]
        );
    }

    #[test]
    fn every_shell_gets_the_cache_and_no_hidden_command() {
        for shell in [CompletionShell::Bash, CompletionShell::Zsh, CompletionShell::Fish] {
            let s = script(shell);
            assert!(s.contains("ec2-broker __complete-hosts 2>/dev/null"), "{shell:?}");
            assert!(!s.contains("'__complete-hosts") && !s.contains(" __complete-hosts help"), "{shell:?}");
            assert!(!s.contains("_hosts'") || s.contains("_ec2_broker_hosts'"), "{shell:?}");
        }
        let bash = script(CompletionShell::Bash);
        assert!(!bash.contains("ec2__subcmd__broker"), "clap-rs/clap#6421 worked around");
        assert!(bash.contains("\"proxy\") valued=\" --profile --region --address"), "{bash}");
        assert!(!bash.contains("compgen -W \"$(command"), "host names are never expanded by compgen -W");
    }
}
