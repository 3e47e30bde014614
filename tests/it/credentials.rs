//! MFA roles end to end: a profile with `role_arn` + `mfa_serial` + `source_profile`, the code
//! typed on the terminal ssh runs in (a pseudo-terminal that is ssh's controlling terminal, as a
//! user's is), STS AssumeRole against the lab's double, and the credentials cache that spares the
//! next connections the question.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ec2_lab::pty::Pty;
use ec2_lab::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use rustix::termios::LocalModes;

use crate::harness::run::wait_deadline;
use crate::harness::{Output, World, broker};

const ROLE: &str = "arn:aws:iam::123456789012:role/lab-admin-mfa";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const PROMPT: &str = "MFA code for arn:aws:iam::123456789012:mfa/alice: ";
const T: Duration = Duration::from_secs(60);

/// A world whose only credentials are the `[base]` profile's keys, with `AWS_PROFILE=admin`
/// naming the MFA role (nothing in the environment).
fn mfa_world() -> World {
    let world = World::new();
    let region = &world.lab.state().inventory.region;
    let config = format!(
        "[default]\nregion = {region}\n\n[profile admin]\nrole_arn = {ROLE}\nmfa_serial = {SERIAL}\nsource_profile = base\n\n\
         [profile plain]\nregion = {region}\n"
    );
    fs::write(world.path("aws-config"), config).unwrap();
    let credentials =
        format!("[base]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n");
    fs::write(world.path("aws-credentials"), credentials).unwrap();
    world
}

/// `program ARGS` with the world's environment, minus the environment keys, plus the profiles.
/// `setsid` starts it in a new session: with `--ctty` its stdin (a [`Pty`]) becomes the
/// controlling terminal that ssh's ProxyCommand inherits; without, there is no terminal at all
/// (whatever terminal runs the tests).
fn command(world: &World, ctty: bool, program: &Path, args: &[&str]) -> Command {
    let mut cmd = world.command("setsid");
    cmd.args(if ctty { ["--ctty", "--wait"].as_slice() } else { ["--wait"].as_slice() });
    cmd.arg(program).args(args);
    cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    cmd.env("AWS_CONFIG_FILE", world.path("aws-config"));
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", world.path("aws-credentials"));
    cmd.env("AWS_PROFILE", "admin");
    cmd
}

fn ssh(world: &World, ctty: bool) -> Command {
    let config = world.ssh_config.display().to_string();
    command(world, ctty, Path::new("ssh"), &["-F", &config, "web-1", "echo ok"])
}

/// What a failed step should show: the screen, ssh's (and so the broker's) stderr, the logs.
fn dump(world: &World, pty: &Pty, stderr: &Path) -> String {
    format!(
        "--- screen\n{}\n--- stderr\n{}\n{}",
        pty.screen(),
        fs::read_to_string(stderr).unwrap_or_default(),
        world.dump()
    )
}

/// Runs `cmd` on a fresh pty; answers `code` to the MFA prompt when given (else asserts there is
/// none); returns whether it succeeded, the pty and the stderr file.
fn on_terminal(world: &World, cmd: Command, code: Option<&str>, name: &str) -> (bool, Pty, PathBuf) {
    let pty = Pty::open(80, 24).unwrap();
    let stderr = world.path(&format!("{name}.err"));
    let mut child = pty.spawn(cmd, &stderr).unwrap();
    if let Some(code) = code {
        if let Err(e) = pty.expect_after(0, PROMPT, T) {
            let _ = child.kill();
            panic!("{e}\n{}", dump(world, &pty, &stderr));
        }
        pty.type_text(&format!("{code}\n")).unwrap();
    }
    let status = wait_deadline(&mut child, T);
    assert!(status.is_some(), "{name} did not finish within {T:?}\n{}", dump(world, &pty, &stderr));
    (status.is_some_and(|s| s.success()), pty, stderr)
}

fn cache_dir(world: &World) -> PathBuf {
    world.path("home").join(".cache/ec2-broker/credentials")
}

fn cache_files(world: &World) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(cache_dir(world)) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assume_role_calls(world: &World) -> Vec<ec2_lab::ApiCall> {
    world.lab.state().calls().into_iter().filter(|c| c.operation == "AssumeRole").collect()
}

#[test]
fn the_code_is_asked_once_then_the_cached_role_credentials_serve_the_next_connection() {
    let world = mfa_world();

    let (ok, pty, stderr) = on_terminal(&world, ssh(&world, true), Some("123456"), "first");
    assert!(ok, "first ssh failed\n{}", dump(&world, &pty, &stderr));
    // The screen is read by a thread: wait for the output rather than read it at once.
    let prompted = pty.expect_after(0, PROMPT, T).unwrap();
    pty.expect_after(prompted, "ok", T).unwrap_or_else(|e| panic!("{e}\n{}", dump(&world, &pty, &stderr)));
    let screen = pty.screen();
    assert!(!screen[prompted..].contains("123456"), "the code was echoed:\n{screen}");
    assert!(pty.modes().unwrap().local_modes.contains(LocalModes::ECHO), "echo was not turned back on");

    let roles = world.lab.state().assumed_roles();
    assert_eq!(roles.len(), 1, "exactly one AssumeRole issued credentials: {roles:#?}\n{}", world.dump());
    let issued = &roles[0];
    assert_eq!(issued.role_arn, ROLE);
    assert!(issued.mfa, "AssumeRole carried the MFA serial and a valid code");
    assert_eq!(issued.caller_key, ACCESS_KEY_ID, "AssumeRole was signed with the base profile's keys");
    assert!(issued.access_key_id.starts_with("ASIA"), "{}", issued.access_key_id);
    let assume_calls = assume_role_calls(&world);
    assert_eq!(assume_calls.len(), 1, "{assume_calls:#?}");
    assert_eq!(assume_calls[0].status, 200);

    let files = cache_files(&world);
    assert_eq!(files.len(), 1, "one cache file: {files:?}");
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&cache_dir(&world)), 0o700);
    let cached = fs::read_to_string(&files[0]).unwrap();
    assert!(cached.contains(&issued.access_key_id), "{cached}");

    // The second connection: no prompt (nothing is typed: a prompt would block it), no AssumeRole,
    // and what it signs is signed with the role's key.
    let seen = world.lab.state().calls().len();
    // Without reusing the first connection's key (issue 19), so that this one must sign a push.
    let mut second = ssh(&world, true);
    second.env("EC2_BROKER_KEY_REUSE", "0");
    let (ok, pty, stderr) = on_terminal(&world, second, None, "second");
    assert!(ok, "second ssh failed\n{}", dump(&world, &pty, &stderr));
    pty.expect_after(0, "ok", T).unwrap_or_else(|e| panic!("{e}\n{}", dump(&world, &pty, &stderr)));
    assert!(!pty.screen().contains("MFA code"), "asked again:\n{}", pty.screen());
    assert_eq!(assume_role_calls(&world).len(), 1, "no second AssumeRole\n{}", world.dump());
    let signed: Vec<_> =
        world.lab.state().calls()[seen..].iter().filter(|c| !c.access_key.is_empty()).cloned().collect();
    assert!(!signed.is_empty(), "the second connection made no signed call\n{}", world.dump());
    for call in &signed {
        assert_eq!(call.access_key, issued.access_key_id, "{call:?} not signed with the role's key");
    }
    let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
    assert!(
        log.contains("using cached MFA credentials for role arn:aws:iam::123456789012:role/lab-admin-mfa until"),
        "{log}"
    );
}

/// See: issue 14 (§5). Two connections started together both found no cached credentials and
/// both asked for a code; now the second waits for the first's prompt and uses what it cached.
#[test]
fn issue_14_two_connections_at_once_ask_for_the_code_once() {
    let world = mfa_world();
    let (first_pty, second_pty) = (Pty::open(80, 24).unwrap(), Pty::open(80, 24).unwrap());
    let (first_err, second_err) = (world.path("first.err"), world.path("second.err"));
    let mut first = first_pty.spawn(ssh(&world, true), &first_err).unwrap();
    first_pty.expect_after(0, PROMPT, T).unwrap_or_else(|e| panic!("{e}\n{}", dump(&world, &first_pty, &first_err)));
    let mut second = second_pty.spawn(ssh(&world, true), &second_err).unwrap();

    // The second broker says it waits (it would have asked on its own terminal before).
    let deadline = std::time::Instant::now() + T;
    loop {
        let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
        if log.contains("waiting up to 180 s for another ec2-broker that is asking for the MFA code for") {
            break;
        }
        if second_pty.screen().contains("MFA code") || std::time::Instant::now() > deadline {
            let _ = (first.kill(), second.kill());
            panic!(
                "the second connection did not wait for the first's prompt\n{}",
                dump(&world, &second_pty, &second_err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    first_pty.type_text("123456\n").unwrap();

    for (name, child, pty, err) in
        [("first", &mut first, &first_pty, &first_err), ("second", &mut second, &second_pty, &second_err)]
    {
        let status = wait_deadline(child, T);
        assert!(status.is_some_and(|s| s.success()), "{name} ssh failed\n{}", dump(&world, pty, err));
        pty.expect_after(0, "ok", T).unwrap_or_else(|e| panic!("{e}\n{}", dump(&world, pty, err)));
    }
    assert!(!second_pty.screen().contains("MFA code"), "the second asked too:\n{}", second_pty.screen());
    assert_eq!(assume_role_calls(&world).len(), 1, "one AssumeRole\n{}", world.dump());
    let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
    assert!(log.contains("using the MFA credentials another ec2-broker just cached for role"), "{log}");
    let lock =
        cache_dir(&world).join(format!("{}.lock", cache_files(&world)[0].file_stem().unwrap().to_string_lossy()));
    assert_eq!(mode(&lock), 0o600);
}

#[test]
fn a_refused_code_fails_the_connection_and_caches_nothing() {
    let world = mfa_world();
    let (ok, pty, stderr) = on_terminal(&world, ssh(&world, true), Some("654321"), "wrong");
    assert!(!ok, "ssh succeeded with a wrong code\n{}", dump(&world, &pty, &stderr));
    let err = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        err.contains(&format!("ec2-broker: error: the MFA code was refused for {SERIAL}"))
            && err.contains("invalid MFA one time pass code")
            && err.contains("try again"),
        "{}",
        dump(&world, &pty, &stderr)
    );
    assert!(world.lab.state().assumed_roles().is_empty());
    let calls = assume_role_calls(&world);
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].status, 403);
    assert!(cache_files(&world).is_empty(), "cached after a refusal: {:?}", cache_files(&world));
    let ec2 = world.lab.state().calls().into_iter().filter(|c| c.service == "ec2").count();
    assert_eq!(ec2, 0, "no EC2 call without credentials\n{}", world.dump());
}

#[test]
fn without_a_terminal_the_message_says_to_log_in_first() {
    let world = mfa_world();
    let out: Output = world.run(ssh(&world, false), T);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains(
            "ec2-broker: error: profile admin needs an MFA code and there is no terminal to ask on: run `ec2-broker \
             login --profile admin` in a terminal first (the code is then cached until the role's credentials expire)"
        ),
        "{}\n{}",
        out.describe(),
        out.context
    );
    assert!(assume_role_calls(&world).is_empty(), "no AssumeRole without a code\n{}", out.context);
    assert!(cache_files(&world).is_empty());
}

#[test]
fn login_caches_the_credentials_that_a_connection_without_a_terminal_then_uses() {
    let world = mfa_world();
    let login = |force: bool, code: Option<&str>, name: &str| {
        let args: &[&str] = if force { &["login", "--force"] } else { &["login"] };
        on_terminal(&world, command(&world, true, &broker(), args), code, name)
    };
    let (ok, pty, stderr) = login(false, Some("123456"), "login");
    let said = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(ok, "login failed\n{}", dump(&world, &pty, &stderr));
    assert!(
        said.contains(&format!(
            "ec2-broker: assumed role {ROLE} (profile admin) with the MFA code; its credentials are cached until"
        )),
        "{said}"
    );
    assert_eq!(cache_files(&world).len(), 1);

    let out = world.run(ssh(&world, false), T);
    assert!(out.success() && out.stdout.contains("ok"), "{}\n{}", out.describe(), out.context);
    assert_eq!(assume_role_calls(&world).len(), 1);

    // Again: nothing to do, unless forced.
    let (ok, pty, stderr) = login(false, None, "again");
    let said = fs::read_to_string(&stderr).unwrap_or_default();
    assert!(ok, "{}", dump(&world, &pty, &stderr));
    assert!(said.contains(&format!("credentials for role {ROLE} (profile admin) are cached until")), "{said}");
    assert_eq!(assume_role_calls(&world).len(), 1);
    let (ok, pty, stderr) = login(true, Some("123456"), "forced");
    assert!(ok, "{}", dump(&world, &pty, &stderr));
    assert_eq!(world.lab.state().assumed_roles().len(), 2);
}

#[test]
fn login_refuses_a_profile_without_mfa() {
    let world = mfa_world();
    let mut cmd = command(&world, false, &broker(), &["login", "--profile", "plain"]);
    cmd.env("AWS_PROFILE", "plain");
    let out = world.run(cmd, T);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains(
            "ec2-broker: error: profile plain is not an MFA role profile (role_arn, mfa_serial and source_profile)"
        ),
        "{}",
        out.describe()
    );
}
