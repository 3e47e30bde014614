//! The docs cannot rot (issue 20): every command in a fenced `sh` or `console` block of README.md
//! and docs/*.md runs against the lab, in a sandbox whose `~/.ssh/config` reaches the lab's
//! instances (web-1, db-1, …) through the broker.
//!
//! The fence's info string says what a block holds:
//! - `sh`: a script, run by `bash -e -o pipefail`, which must exit 0;
//! - `console`: a transcript; each `$ ` line is a command (run by bash), the lines after it are
//!   what it prints (not compared: ports, addresses and times differ), and `(exit N)` in the
//!   command's comment is the status it must end with (else 0). For `--help` commands every
//!   `--option` the transcript shows must be in the real help, so the reference cannot drift;
//! - `sh norun: REASON` / `console norun: REASON`: not run here, for the reason given;
//! - anything else (`text`, `ssh-config`, `ini`, `json`): not commands.
//!
//! A block without an info string is refused, so nothing is left unclassified.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{World, broker};

/// A fenced block.
struct Block {
    file: String,
    line: usize,
    info: String,
    body: Vec<String>,
}

/// What a block is for.
#[derive(Debug, PartialEq)]
enum Kind {
    Script,
    Transcript,
    NotRun(String),
    NotCommands,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, repo().join("README.md"));
    pages
}

fn blocks(path: &Path) -> Vec<Block> {
    let text = fs::read_to_string(path).expect("a doc page");
    let file = path.strip_prefix(repo()).unwrap_or(path).display().to_string();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block { file: file.clone(), line: i + 1, info: info.trim().into(), body: Vec::new() })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(b), None) => b.body.push(line.to_string()),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is not closed");
    blocks
}

fn kind(info: &str) -> Result<Kind, String> {
    let (lang, rest) = info.split_once(' ').unwrap_or((info, ""));
    let rest = rest.trim();
    match (lang, rest) {
        ("", _) => {
            Err("a fenced block needs an info string: sh, console, or what it holds (text, ssh-config, ini, json)"
                .into())
        }
        ("sh", "") => Ok(Kind::Script),
        ("console", "") => Ok(Kind::Transcript),
        ("sh" | "console", r) => match r.strip_prefix("norun:").map(str::trim) {
            Some(reason) if !reason.is_empty() => Ok(Kind::NotRun(reason.into())),
            _ => Err(format!("unknown attribute {r:?}: only `norun: REASON`")),
        },
        _ => Ok(Kind::NotCommands),
    }
}

/// The commands of a transcript: (command, expected status, the lines it prints).
fn transcript(body: &[String]) -> Vec<(String, i32, Vec<String>)> {
    let mut out: Vec<(String, i32, Vec<String>)> = Vec::new();
    for line in body {
        if let Some(cmd) = line.strip_prefix("$ ") {
            let status =
                cmd.split_once("(exit ").and_then(|(_, s)| s.split(')').next()?.trim().parse().ok()).unwrap_or(0);
            out.push((cmd.trim().to_string(), status, Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.2.push(line.clone());
        }
    }
    out
}

#[test]
fn every_fenced_block_says_what_it_holds() {
    let mut problems = String::new();
    let mut run = 0;
    for page in pages() {
        for b in blocks(&page) {
            match kind(&b.info) {
                Err(e) => {
                    let _ = writeln!(problems, "{}:{}: {e}", b.file, b.line);
                }
                Ok(Kind::Script | Kind::Transcript) => run += 1,
                Ok(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{problems}");
    assert!(run >= 8, "only {run} runnable blocks: the docs' commands are not being checked");
    // The parser itself.
    assert_eq!(kind("sh"), Ok(Kind::Script));
    assert_eq!(kind("console norun: needs AWS"), Ok(Kind::NotRun("needs AWS".into())));
    assert!(kind("sh norun:").is_err() && kind("sh quick").is_err() && kind("").is_err());
    let t = transcript(&["$ a --x   # b (exit 1)".into(), "out --y".into(), "$ c".into()]);
    assert_eq!(t, vec![("a --x   # b (exit 1)".into(), 1, vec!["out --y".into()]), ("c".into(), 0, vec![])]);
}

/// One page's sandbox: a lab, a HOME whose ssh config reaches it, profiles `prod` and `dev`,
/// and a working directory with a file `f` and a directory `d/`.
struct Sandbox {
    world: World,
    home: PathBuf,
    work: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let world = World::new();
        let home = world.path("home");
        let ssh = home.join(".ssh");
        fs::create_dir_all(&ssh).unwrap();
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).unwrap();
        fs::copy(&world.ssh_config, ssh.join("config")).unwrap();
        fs::copy(world.path("known_hosts"), ssh.join("known_hosts")).unwrap();
        fs::create_dir_all(home.join(".aws")).unwrap();
        let region = world.lab.env().into_iter().find(|(k, _)| k == "AWS_REGION").map(|(_, v)| v);
        let region = region.unwrap_or_else(|| "eu-west-1".into());
        fs::write(
            home.join(".aws/config"),
            format!(
                "[default]\nregion = {region}\n[profile prod]\nregion = {region}\n[profile dev]\nregion = {region}\n"
            ),
        )
        .unwrap();
        let work = world.path("work");
        fs::create_dir_all(work.join("d")).unwrap();
        fs::write(work.join("f"), "a file to copy\n").unwrap();
        fs::write(work.join("d/inside"), "in a directory\n").unwrap();
        // ssh reads `~/.ssh/config` from the passwd entry's home, not $HOME: this `ssh` (first on
        // the pages' PATH, so also the one `ec2-broker cp` runs) reads the sandbox's, as a user's
        // own ssh reads theirs.
        let bin = world.path("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("ssh"), "#!/bin/sh\nexec /usr/bin/ssh -F \"$HOME/.ssh/config\" \"$@\"\n").unwrap();
        fs::set_permissions(bin.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { world, home, work }
    }

    /// `bash ARGS` in the sandbox, stdin from /dev/null.
    fn bash(&self, args: &[&str]) -> crate::harness::Output {
        let mut cmd = self.world.command("bash");
        let bin = broker().parent().expect("the broker's directory").to_path_buf();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        cmd.env("PATH", format!("{}:{}:{path}", self.world.path("bin").display(), bin.display()));
        cmd.env("AWS_CONFIG_FILE", self.home.join(".aws/config"));
        cmd.env("TERM", "dumb");
        // The lab's own logs stay in the world's log; a page's commands run quiet, like a user's.
        cmd.env_remove("EC2_BROKER_LOG");
        cmd.args(args).current_dir(&self.work).stdin(Stdio::null());
        self.world.run(cmd, Duration::from_secs(120))
    }
}

#[test]
fn every_command_in_the_docs_runs_against_the_lab() {
    assert!(
        broker().with_file_name("ec2-lab").exists(),
        "{} is missing: the docs run ec2-lab; build it first (`cargo build --bins`, as scripts/test.sh does)",
        broker().with_file_name("ec2-lab").display()
    );
    let mut ran = 0;
    for page in pages() {
        let runnable: Vec<(Block, Kind)> = blocks(&page)
            .into_iter()
            .filter_map(|b| match kind(&b.info) {
                Ok(k @ (Kind::Script | Kind::Transcript)) => Some((b, k)),
                _ => None,
            })
            .collect();
        if runnable.is_empty() {
            continue;
        }
        let sandbox = Sandbox::new();
        for (b, k) in runnable {
            let at = format!("{}:{}", b.file, b.line);
            if k == Kind::Script {
                let script = b.body.join("\n");
                // Background jobs a block starts end with it, however it ends.
                let guarded = format!("trap 'st=$?; kill $(jobs -p) 2>/dev/null || true; exit $st' EXIT\n{script}");
                let out = sandbox.bash(&["-e", "-o", "pipefail", "-c", &guarded]);
                assert!(out.success(), "{at}: the block failed\n{script}\n{}\n{}", out.describe(), out.context);
                ran += 1;
                continue;
            }
            for (cmd, status, shown) in transcript(&b.body) {
                let out = sandbox.bash(&["-c", &cmd]);
                assert_eq!(
                    out.code(),
                    Some(status),
                    "{at}: `{cmd}` should exit {status}\n{}\n{}",
                    out.describe(),
                    out.context
                );
                if cmd.contains("--help") {
                    for option in
                        shown.iter().flat_map(|l| l.split([' ', ',', '/', '='])).filter(|w| w.starts_with("--"))
                    {
                        let option = option.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                        assert!(out.stdout.contains(option), "{at}: `{cmd}` does not list {option}:\n{}", out.stdout);
                    }
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 15, "only {ran} commands ran");
}
