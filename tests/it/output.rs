//! Issue 20, progress and output: every `--json` document against its section of
//! docs/output.md (so the docs and the output cannot drift), the progress bar on a terminal's
//! stderr and nowhere else, and tables fitted to a terminal's width.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ec2_lab::pty::Pty;
use ec2_lab::regions::{GENERATED_REGIONS, Regions, generated};
use serde_json::Value;

use crate::assert_ok;
use crate::harness::run::wait_deadline;
use crate::harness::terminal::read;
use crate::harness::{World, broker, run};

const T: Duration = Duration::from_secs(90);

/// The field table of `schema`'s section of docs/output.md: path → its type.
fn documented(schema: &str) -> BTreeMap<String, String> {
    let docs =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/output.md")).expect("docs/output.md");
    let heading = format!("## `{schema}`");
    let section = docs.split("\n## ").find(|s| format!("## {}", s.lines().next().unwrap_or("")) == heading);
    let section = section.unwrap_or_else(|| panic!("docs/output.md has no section {heading:?}"));
    let mut fields = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let path = cells[0].trim_start_matches("| `").trim_end_matches('`');
        fields.insert(path.to_string(), cells[1].trim().to_string());
    }
    assert!(fields.contains_key("schema"), "{heading}: no schema row");
    fields
}

/// Whether `value` is of the documented type `ty` (`string or null`, `array of object`, …).
fn of_type(value: &Value, ty: &str) -> bool {
    ty.split(" or ").any(|one| match one {
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "bool" => value.is_boolean(),
        "null" => value.is_null(),
        "object" => value.is_object(),
        _ => match (one.strip_prefix("array of "), one.strip_prefix("map of ")) {
            (Some(item), _) => value.as_array().is_some_and(|a| a.iter().all(|v| of_type(v, item))),
            (_, Some(item)) => value.as_object().is_some_and(|m| m.values().all(|v| of_type(v, item))),
            _ => panic!("docs/output.md: unknown type {one:?}"),
        },
    })
}

/// Every field of `value` under `path`, documented and of its documented type.
fn check_fields(value: &Value, path: &str, docs: &BTreeMap<String, String>, schema: &str) {
    let Some(ty) = docs.get(path) else {
        panic!("{schema}: field {path:?} is printed but not documented in docs/output.md")
    };
    assert!(of_type(value, ty), "{schema}: {path} is documented as {ty}, printed as {value}");
    let prefix = |p: &str| if p.is_empty() { String::new() } else { format!("{p}.") };
    match value {
        Value::Object(map) if !ty.starts_with("map of") => {
            for (k, v) in map {
                check_fields(v, &format!("{}{k}", prefix(path)), docs, schema);
            }
        }
        Value::Array(items) if ty.contains("array of object") => {
            for v in items {
                for (k, field) in v.as_object().into_iter().flatten() {
                    check_fields(field, &format!("{path}[].{k}"), docs, schema);
                }
            }
        }
        _ => {}
    }
}

/// Checks a `--json` document against docs/output.md: its `schema`, every field it prints
/// documented with its type, and every top-level field the docs do not call optional present.
pub fn check_documented(doc: &Value, schema: &str) {
    assert_eq!(doc["schema"], schema, "{doc}");
    let docs = documented(schema);
    let map = doc.as_object().expect("a JSON object");
    for (k, v) in map {
        check_fields(v, k, &docs, schema);
    }
    for (field, _) in docs.iter().filter(|(f, _)| !f.contains(['.', '['])) {
        let optional = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/output.md"))
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("| `{field}` |")) && l.contains("Absent "));
        assert!(optional || map.contains_key(field), "{schema}: documented field {field:?} is missing: {doc}");
    }
}

// See: issue 20 (`--json` everywhere with a documented, versioned schema). The checker itself:
// an undocumented field and a wrong type are both caught.
#[test]
fn issue_20_the_schema_checker_catches_drift() {
    let doc = serde_json::json!({"schema": "ec2-broker.doctor/1", "host": "web-1", "checks": [],
        "warnings": [], "usable_routes": ["ssm"]});
    check_documented(&doc, "ec2-broker.doctor/1");
    let extra = std::panic::catch_unwind(|| {
        let mut d = doc.clone();
        d["surprise"] = Value::Bool(true);
        check_documented(&d, "ec2-broker.doctor/1");
    });
    assert!(extra.is_err(), "an undocumented field fails");
    let wrong = std::panic::catch_unwind(|| {
        let mut d = doc.clone();
        d["checks"] = serde_json::json!([{"check": "ssm", "result": "works", "evidence": "one", "fix": null}]);
        check_documented(&d, "ec2-broker.doctor/1");
    });
    assert!(wrong.is_err(), "evidence is an array of strings, not a string");
    let missing = std::panic::catch_unwind(|| {
        check_documented(&serde_json::json!({"schema": "ec2-broker.doctor/1"}), "ec2-broker.doctor/1")
    });
    assert!(missing.is_err(), "a documented field missing fails");
}

// See: issue 20. `known-hosts pin --json`: a document of schema ec2-broker.known-hosts-pin/1.
#[test]
fn issue_20_pin_prints_json_of_its_schema() {
    let world = World::new();
    let file = world.path("pinned");
    let mut cmd = world.command(broker());
    cmd.args(["known-hosts", "pin", "web-1", "--json", "--route", "direct", "--port"])
        .arg(world.lab.ssh_port("i-0a1b2c3d4e5f60718").to_string())
        .arg("--file")
        .arg(&file);
    let out = world.run(cmd, T);
    assert_ok!(out);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    check_documented(&doc, "ec2-broker.known-hosts-pin/1");
    assert_eq!(doc["instance"], "i-0a1b2c3d4e5f60718");
    assert_eq!(doc["alias"], "i-0a1b2c3d4e5f60718");
    assert_eq!(doc["name"], "web-1");
    assert_eq!(doc["file"], file.display().to_string());
    let keys = doc["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k["console"] == "matches" && k["pinned"] == true), "{doc}");
    let written = fs::read_to_string(&file).unwrap();
    for k in keys {
        assert!(written.contains(k["algorithm"].as_str().unwrap()), "{written}");
    }
}

/// Runs `args` with stderr on a fresh `cols`-wide pty and stdout into a file; returns (exit
/// code, stdout, what the terminal showed).
fn stderr_on_a_pty(mut cmd: Command, dir: &Path) -> (Option<i32>, String, String) {
    let pty = Pty::open(120, 24).unwrap();
    let stdout = dir.join("stdout");
    // A dumb terminal (TERM unset or `dumb`) cannot redraw a line: no bar there.
    cmd.env("TERM", "xterm");
    cmd.stdin(Stdio::null()).stdout(File::create(&stdout).unwrap()).stderr(pty.stdio().unwrap());
    let mut child = cmd.spawn().unwrap();
    let status = wait_deadline(&mut child, T).expect("finished in time");
    // Let the reader thread take the last bytes.
    std::thread::sleep(Duration::from_millis(200));
    (status.code(), read(&stdout), pty.screen())
}

// See: issue 20 (a progress bar on stderr when it is a terminal, nothing when it is not).
#[test]
fn issue_20_ls_over_regions_shows_progress_on_a_terminal_only() {
    let dir = tempfile::Builder::new().prefix("ec2-broker-it-").tempdir().expect("temp dir");
    let regions = Regions::start(generated(30, 7), &dir.path().join("lab")).expect("starting the Regions");
    let command = || {
        let mut cmd = Command::new(broker());
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(regions.env());
        cmd.env("HOME", dir.path().join("home")).args(["ls", "--regions", &GENERATED_REGIONS.join(",")]);
        cmd
    };
    let (code, stdout, screen) = stderr_on_a_pty(command(), dir.path());
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("listing Regions") && screen.contains("/3"), "no bar on the terminal:\n{screen:?}");
    assert!(
        stdout.starts_with("REGION ") && !stdout.contains("listing Regions"),
        "stdout is the table alone:\n{stdout}"
    );

    let out = run(command(), T);
    assert_ok!(out);
    assert_eq!(out.stderr, "", "no progress into a pipe");
    assert_eq!(out.stdout, stdout, "the same table either way");
}

// See: issue 20 (the audit's console checks show progress on a terminal, nothing in a pipe).
#[test]
fn issue_20_audit_console_checks_show_progress_on_a_terminal_only() {
    let world = World::new();
    let file = world.path("known_hosts");
    let key = world.lab.state().host_keys("i-0a1b2c3d4e5f60718");
    let key = key.iter().find(|k| k.starts_with("ssh-ed25519")).unwrap();
    fs::write(&file, format!("i-0a1b2c3d4e5f60718 {key}\ni-0f1b2c3d4e5f6071d {key}\n")).unwrap();
    let command = || {
        let mut cmd = world.command(broker());
        cmd.args(["known-hosts", "audit", "--json"]).arg(&file);
        cmd
    };
    let (code, stdout, screen) = stderr_on_a_pty(command(), world.dir.path());
    assert!(matches!(code, Some(0 | 1)), "{screen}\n{}", world.dump());
    assert!(screen.contains("reading consoles") && screen.contains("/2"), "no bar on the terminal:\n{screen:?}");
    let doc: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: stdout is the JSON alone:\n{stdout}"));
    check_documented(&doc, "ec2-broker.known-hosts-audit/1");
    assert!(doc["findings"].as_array().unwrap().iter().any(|f| f["kind"] == "verified"), "{doc}");

    let out = world.run(command(), T);
    assert_eq!(out.code(), code, "{}", out.describe());
    assert_eq!(out.stderr, "", "no progress into a pipe");
}

// See: issue 20 (tables fit the terminal: COLUMNS, else the terminal's size; never cut in a pipe).
#[test]
fn issue_20_ls_table_fits_the_terminal_and_is_whole_in_a_pipe() {
    let world = World::new();
    let piped = {
        let mut cmd = world.command(broker());
        cmd.env("COLUMNS", "90").arg("ls");
        world.run(cmd, T)
    };
    assert_ok!(piped);
    let widest = |text: &str| text.lines().map(|l| l.trim_end_matches('\r').chars().count()).max().unwrap_or(0);
    assert!(widest(&piped.stdout) > 90, "the lab's table is wider than 90 in a pipe:\n{}", piped.stdout);
    assert!(!piped.stdout.contains('…'));

    for (cols, columns) in [(200, Some("90")), (90, None)] {
        let pty = Pty::open(cols, 24).unwrap();
        let mut cmd = world.command(broker());
        cmd.arg("ls");
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        let stderr = world.path("ls.err");
        let mut child = pty.spawn(cmd, &stderr).unwrap();
        let status = wait_deadline(&mut child, T).expect("finished in time");
        std::thread::sleep(Duration::from_millis(200));
        assert!(status.success(), "{}", read(&stderr));
        let screen = pty.screen();
        assert!(screen.starts_with("REGION "), "{screen}");
        assert!(widest(&screen) <= 90, "cut to 90 columns ({cols}×24 pty, COLUMNS={columns:?}):\n{screen}");
        assert!(screen.contains('…'), "{screen}");
        assert_eq!(screen.lines().count(), piped.stdout.lines().count(), "no line lost or wrapped");
    }
}

// See: issue 20 (doctor's long evidence lines wrap under their column on a terminal only).
#[test]
fn issue_20_doctor_wraps_to_the_terminal_and_not_in_a_pipe() {
    let world = World::new();
    let doctor = || {
        let mut cmd = world.command(broker());
        cmd.env("COLUMNS", "60").arg("doctor").arg("--ssh-config").arg(&world.ssh_config).args(["--no-push", "web-1"]);
        cmd
    };
    let piped = world.run(doctor(), T);
    assert_ok!(piped);
    let widest = |text: &str| text.lines().map(|l| l.trim_end_matches('\r').chars().count()).max().unwrap_or(0);
    assert!(widest(&piped.stdout) > 60, "doctor's lines are longer than 60 in a pipe:\n{}", piped.stdout);

    let pty = Pty::open(200, 24).unwrap();
    let stderr = world.path("doctor.err");
    let mut child = pty.spawn(doctor(), &stderr).unwrap();
    let status = wait_deadline(&mut child, T).expect("finished in time");
    std::thread::sleep(Duration::from_millis(200));
    assert!(status.success(), "{}", read(&stderr));
    let screen = pty.screen().replace("\r\n", "\n");
    // A word longer than a line (an ARN) stays whole, on a line of its own.
    let fits = |l: &str| l.chars().count() <= 60 || l.split_whitespace().count() == 1;
    assert!(screen.lines().all(fits), "wrapped to COLUMNS=60:\n{screen}");
    assert!(screen.lines().count() > piped.stdout.lines().count(), "something was wrapped:\n{screen}");
    let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>().join(" ");
    assert_eq!(words(&screen), words(&piped.stdout), "the same words, only the line breaks differ");
}
