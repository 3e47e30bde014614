//! Issue 20, the user's world: `ssh-config` (written into an Include file, read back by the real
//! `ssh -G`, used by `ssh ALIAS true`), `ls` across three Regions, bash completion and the man
//! page.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ec2_lab::regions::{GENERATED_REGIONS, Regions, VPC_WITHOUT_ENDPOINT, generated};
use ec2_lab::{InstanceSpec, Inventory, SsmStatus};
use serde_json::Value;

use crate::assert_ok;
use crate::harness::{Output, World, broker, run};

/// `ec2-broker ARGS` in the world.
fn broker_in(world: &World, args: &[&str]) -> Output {
    let mut cmd = world.command(broker());
    cmd.args(args);
    world.run(cmd, Duration::from_secs(120))
}

/// A small inventory whose every instance ssh can log in to: one reachable directly, one only
/// through its SSM agent, two sharing a Name, and a terminated one (no block).
fn small() -> Inventory {
    Inventory::from_toml(
        r#"
region = "eu-west-1"

[[instance]]
id = "i-0a1b2c3d4e5f60718"
name = "web-1"
private_ip = "127.0.7.10"

[[instance]]
id = "i-0b1b2c3d4e5f60719"
name = "App"
private_ip = "127.0.7.11"

[[instance]]
id = "i-0c1b2c3d4e5f6071a"
name = "app"
private_ip = "127.0.7.12"

[[instance]]
id = "i-0f1b2c3d4e5f6071d"
name = "db-1"
private_ip = "127.0.7.15"
inbound = false
ssm = "online"

[[instance]]
id = "i-0d1b2c3d4e5f6071b"
name = "old"
state = "terminated"
"#,
    )
    .expect("inventory parses")
}

/// `ssh -G -F CONFIG ALIAS` as `key value` pairs (the first value of each key).
fn ssh_g(world: &World, config: &Path, alias: &str) -> HashMap<String, String> {
    let mut cmd = world.command("ssh");
    cmd.arg("-G").arg("-F").arg(config).arg(alias);
    let out = world.run(cmd, Duration::from_secs(10));
    assert_ok!(out);
    let mut map = HashMap::new();
    for line in out.stdout.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            map.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    map
}

// See: issue 20 (ssh-config --write keeps the user's file and is idempotent; ssh reads it).
#[test]
fn issue_20_ssh_config_write_keeps_user_content_and_ssh_uses_every_host() {
    let world = World::with(small(), "");
    let home = world.path("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    let file = home.join(".ssh/ec2-broker.conf");
    let head = "# my own hosts\nHost bastion\n    User me\n";
    fs::write(&file, head).unwrap();
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let broker_path = broker().display().to_string();
    let write = |extra: &[&str]| {
        let mut args = vec!["ssh-config", "--broker", &broker_path, "--write", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        broker_in(&world, &args)
    };

    // First run: only web-1, appended after the user's lines.
    let out = write(&["--filter", "web-1"]);
    assert_ok!(out);
    assert_eq!(out.stdout, "", "--write prints nothing on stdout");
    assert!(out.stderr.contains("+Host web-1\n"), "the diff shows the new block:\n{}", out.stderr);
    assert!(out.stderr.contains("add `Include "), "says how to make ssh read it:\n{}", out.stderr);
    let first = fs::read_to_string(&file).unwrap();
    assert!(first.starts_with(head), "{first}");
    // The user adds lines after the section.
    let tail = "\nHost *.internal\n    ProxyJump bastion\n";
    fs::write(&file, format!("{first}{tail}")).unwrap();

    // Second run, every instance: the section is replaced, the lines around it are kept.
    let out = write(&[]);
    assert_ok!(out);
    assert!(out.stderr.contains("share the alias app: written as app.i-0b1b2c3d4e5f60719"), "{}", out.stderr);
    let second = fs::read_to_string(&file).unwrap();
    assert!(second.starts_with(head) && second.ends_with(tail), "{second}");
    assert_eq!(second.matches("# >>> ec2-broker ssh-config: default >>>").count(), 1);
    let aliases: Vec<&str> = second.lines().filter_map(|l| l.strip_prefix("Host ")).collect();
    assert_eq!(
        aliases,
        ["bastion", "app.i-0b1b2c3d4e5f60719", "app.i-0c1b2c3d4e5f6071a", "db-1", "web-1", "*.internal"],
        "{second}"
    );
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640, "the file's mode is kept");

    // Third run: nothing changed, nothing written (same inode, same text).
    let out = write(&[]);
    assert_ok!(out);
    assert!(out.stderr.contains("up to date (4 hosts), not rewritten"), "{}", out.stderr);
    assert_eq!(fs::metadata(&file).unwrap().ino(), meta.ino(), "the file was not replaced");
    assert_eq!(fs::read_to_string(&file).unwrap(), second);

    // ssh reads the generated blocks as intended.
    for (alias, id, user) in [
        ("web-1", "i-0a1b2c3d4e5f60718", "ec2-user"),
        ("db-1", "i-0f1b2c3d4e5f6071d", "ec2-user"),
        ("app.i-0b1b2c3d4e5f60719", "i-0b1b2c3d4e5f60719", "ec2-user"),
    ] {
        let g = ssh_g(&world, &file, alias);
        assert_eq!(g["hostname"], id, "{alias}");
        assert_eq!(g["hostkeyalias"], id, "{alias}");
        assert_eq!(g["user"], user, "{alias}");
        assert_eq!(g["proxycommand"], format!("{broker_path} proxy --region eu-west-1 %r@%h:%p"), "{alias}");
        assert_eq!(g["identityfile"], format!("{}/.cache/ec2-broker/keys/%r@%h", home.display()), "{alias}");
    }

    // And every generated host is reachable with plain ssh through the broker: the main config
    // includes the file and adds only the lab's port and a fresh known_hosts.
    let known = world.path("known_hosts_ids");
    let port = world.lab.ssh_port("i-0a1b2c3d4e5f60718");
    let main = world.path("main_config");
    fs::write(
        &main,
        format!(
            "Include {}\nHost *\n    Port {port}\n    UserKnownHostsFile {}\n    GlobalKnownHostsFile /dev/null\n    \
             StrictHostKeyChecking accept-new\n    BatchMode yes\n    ConnectTimeout 20\n    IdentityAgent none\n",
            file.display(),
            known.display()
        ),
    )
    .unwrap();
    for alias in ["web-1", "db-1", "app.i-0b1b2c3d4e5f60719", "app.i-0c1b2c3d4e5f6071a"] {
        let mut cmd = world.command("ssh");
        cmd.arg("-F").arg(&main).args([alias, "echo", "on", "$(hostname)"]);
        let out = world.run(cmd, Duration::from_secs(60));
        assert_ok!(out);
        assert!(out.stdout.starts_with("on "), "{}", out.describe());
    }
    // Host keys were recorded under the instance ids (HostKeyAlias), not under addresses.
    let recorded = fs::read_to_string(&known).unwrap();
    for id in ["i-0a1b2c3d4e5f60718", "i-0f1b2c3d4e5f6071d", "i-0b1b2c3d4e5f60719", "i-0c1b2c3d4e5f6071a"] {
        assert!(recorded.lines().any(|l| l.starts_with(&format!("{id} "))), "{id}:\n{recorded}");
    }
    assert!(!recorded.contains("127.0.7."), "{recorded}");
}

#[test]
fn issue_20_ssh_config_refuses_the_main_config_and_damaged_markers() {
    let world = World::with(small(), "");
    let ssh_dir = world.path("home/.ssh");
    fs::create_dir_all(&ssh_dir).unwrap();
    let main = ssh_dir.join("config");
    fs::write(&main, "Host mine\n").unwrap();
    let out = broker_in(&world, &["ssh-config", "--write", main.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("it is ssh's main configuration"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(&main).unwrap(), "Host mine\n");

    let damaged = ssh_dir.join("ec2.conf");
    let text = "# >>> ec2-broker ssh-config: default >>>\nHost a\n";
    fs::write(&damaged, text).unwrap();
    let out = broker_in(&world, &["ssh-config", "--write", damaged.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("markers of section \"default\" are damaged"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(&damaged).unwrap(), text, "left as it was");
}

#[test]
fn issue_20_ssh_config_several_profiles_in_one_file() {
    let world = World::with(small(), "");
    let config = world.path("aws-profiles");
    fs::write(&config, "[profile prod]\nregion = eu-west-1\n[profile dev]\nregion = eu-west-1\n").unwrap();
    let mut cmd = world.command(broker());
    cmd.env("AWS_CONFIG_FILE", &config).env_remove("AWS_REGION");
    cmd.args(["ssh-config", "--profile", "prod", "--profile", "dev", "--prefix-profile", "--filter", "web-1"]);
    let out = world.run(cmd, Duration::from_secs(60));
    assert_ok!(out);
    let file = world.path("profiles.conf");
    fs::write(&file, &out.stdout).unwrap();
    for (alias, profile) in [("prod.web-1", "prod"), ("dev.web-1", "dev")] {
        let g = ssh_g(&world, &file, alias);
        assert!(
            g["proxycommand"].ends_with(&format!(" proxy --profile {profile} --region eu-west-1 %r@%h:%p")),
            "{g:?}"
        );
        assert_eq!(g["hostkeyalias"], "i-0a1b2c3d4e5f60718");
    }
}

/// What the lab's inventory says each route should look like, decided here from the specs
/// (not from the broker's code).
fn expected_routes(spec: &InstanceSpec, inv: &Inventory) -> Value {
    let running = spec.state == "running";
    let linux = spec.platform.is_none();
    let endpoint = inv.endpoints.iter().any(|e| e.vpc_id == spec.vpc_id && e.usable());
    let agent = spec.ssm.unwrap_or(if linux { SsmStatus::Online } else { SsmStatus::None }) == SsmStatus::Online;
    let nitro = !spec.instance_type.starts_with("t2.") && !spec.instance_type.starts_with("t1.");
    serde_json::json!({
        "push": running && linux,
        "direct": running && (spec.private_ip.is_some() || spec.public_ip.is_some()),
        "eice": running && spec.private_ip.is_some() && endpoint,
        "ssm": running && agent,
        "serial": running && inv.serial_console_access && nitro,
    })
}

/// Checks one `ls --json` document against schema ec2-broker.ls/1, field by field.
fn check_schema(doc: &Value) {
    let keys = |v: &Value| v.as_object().expect("an object").keys().cloned().collect::<Vec<_>>();
    crate::output::check_documented(doc, "ec2-broker.ls/1");
    assert_eq!(keys(doc), ["instances", "schema", "scopes"]);
    let opt_str = |v: &Value| v.is_null() || v.is_string();
    for s in doc["scopes"].as_array().expect("scopes") {
        assert_eq!(keys(s), ["error", "listed", "profile", "region", "warnings"]);
        assert!(opt_str(&s["profile"]) && s["region"].is_string() && s["listed"].is_u64() && opt_str(&s["error"]));
        assert!(s["warnings"].as_array().expect("warnings").iter().all(Value::is_string));
    }
    for i in doc["instances"].as_array().expect("instances") {
        assert_eq!(
            keys(i),
            [
                "availability_zone",
                "id",
                "instance_type",
                "name",
                "platform",
                "private_ip",
                "profile",
                "public_ip",
                "region",
                "routes",
                "ssm_ping_status",
                "state",
                "tags",
                "vpc_id"
            ]
        );
        for k in ["id", "region", "state"] {
            assert!(i[k].is_string(), "{k}: {i}");
        }
        for k in [
            "availability_zone",
            "instance_type",
            "name",
            "private_ip",
            "profile",
            "public_ip",
            "ssm_ping_status",
            "vpc_id",
        ] {
            assert!(opt_str(&i[k]), "{k}: {i}");
        }
        assert!(i["platform"] == "linux" || i["platform"] == "windows", "{i}");
        assert!(i["tags"].as_object().expect("tags").values().all(Value::is_string));
        assert_eq!(keys(&i["routes"]), ["direct", "eice", "push", "serial", "ssm"]);
        assert!(i["routes"].as_object().unwrap().values().all(|v| v.is_boolean() || v.is_null()), "{i}");
    }
}

// See: issue 20 (ls over 2,000 instances in three Regions).
#[test]
fn issue_20_ls_lists_two_thousand_instances_in_three_regions_with_their_routes() {
    let dir = tempfile::Builder::new().prefix("ec2-broker-it-").tempdir().expect("temp dir");
    let inventories = generated(2_000, 20);
    let specs: BTreeMap<String, (InstanceSpec, Inventory)> = inventories
        .iter()
        .flat_map(|inv| inv.instances.iter().map(move |i| (i.id.clone(), (i.clone(), inv.clone()))))
        .collect();
    let regions = Regions::start(inventories, &dir.path().join("lab")).expect("starting the Regions");
    // A small page size forces every listing through its pagination.
    for lab in regions.labs() {
        lab.state().set_faults(|f| f.page_size = Some(100));
    }
    let home = dir.path().join("home");
    let command = |args: &[&str]| {
        let mut cmd = Command::new(broker());
        cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(regions.env());
        cmd.env("HOME", &home).args(args);
        run(cmd, Duration::from_secs(120))
    };

    let out = command(&["ls", "--json", "--regions", &GENERATED_REGIONS.join(",")]);
    assert_ok!(out);
    assert_eq!(out.stderr, "", "nothing on stderr when every call worked");
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    check_schema(&doc);
    let scopes = doc["scopes"].as_array().unwrap();
    assert_eq!(
        scopes.iter().map(|s| s["region"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ap-southeast-2", "eu-west-1", "us-east-1"]
    );
    let listed = doc["instances"].as_array().unwrap();
    assert_eq!(listed.len(), 2_000, "every instance listed once");
    let mut seen = std::collections::HashSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for i in listed {
        let id = i["id"].as_str().unwrap();
        assert!(seen.insert(id.to_string()), "{id} twice");
        let (spec, inv) = &specs[id];
        assert_eq!(i["region"], inv.region.as_str(), "{id}");
        assert_eq!(i["state"], spec.state.as_str(), "{id}");
        assert_eq!(i["name"], spec.name.as_deref().unwrap(), "{id}");
        assert_eq!(i["routes"], expected_routes(spec, inv), "{id}: {spec:?}");
        *kinds.entry(i["routes"].to_string()).or_default() += 1;
    }
    // The three Regions' mixes give more than a handful of distinct verdicts, e.g. no eice in
    // us-east-1's VPC without an endpoint, no serial in ap-southeast-2, lost agents.
    assert!(kinds.len() >= 6, "{kinds:#?}");
    assert!(specs.values().any(|(s, _)| s.vpc_id == VPC_WITHOUT_ENDPOINT));

    // The same through DescribeRegions, as a table: a header and a line per instance.
    let out = command(&["ls", "--all-regions"]);
    assert_ok!(out);
    assert_eq!(out.stdout.lines().count(), 2_001);
    assert!(out.stdout.starts_with("REGION "), "{}", &out.stdout[..200]);

    // The lookups went into proxy's cache.
    let cache = fs::read_to_string(home.join(".cache/ec2-broker/instances.json")).expect("the cache was written");
    assert!(cache.contains("||i-0"), "{}", &cache[..200.min(cache.len())]);

    // A Region the account has not enabled is an error for it alone: the others are listed.
    let out = command(&["ls", "--json", "--regions", "eu-west-1,sa-east-1"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("sa-east-1: could not list instances"), "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON");
    check_schema(&doc);
    assert!(doc["scopes"].as_array().unwrap().iter().any(|s| s["region"] == "sa-east-1" && s["error"].is_string()));
    assert!(!doc["instances"].as_array().unwrap().is_empty());
}

// See: issue 20 (the routes column for each lab scenario of the demo inventory).
#[test]
fn issue_20_ls_routes_for_each_demo_scenario_and_unknowns_when_denied() {
    let world = World::new();
    let out = broker_in(&world, &["ls"]);
    assert_ok!(out);
    let routes: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[2], cells[cells.len() - 1])
        })
        .collect();
    let expected = BTreeMap::from([
        ("web-1", "push,direct,eice,ssm,serial"),
        ("api-1", "push,direct,eice,ssm,serial"),
        ("api-2", "push,direct,eice,ssm,serial"),
        ("batch-1", "-"),
        ("legacy-1", "push,direct,eice,ssm,serial"),
        ("db-1", "push,direct,eice,ssm,serial"),
        ("iso-1", "push,direct,ssm,serial"),
    ]);
    assert_eq!(routes, expected, "{}", out.stdout);

    // Without DescribeInstanceInformation the ssm verdict is unknown, said on stderr and in JSON.
    world.lab.state().set_faults(|f| {
        f.deny.insert("ssm:DescribeInstanceInformation".into());
    });
    let out = broker_in(&world, &["ls", "--json", "web-1"]);
    assert_ok!(out);
    assert!(out.stderr.contains("DescribeInstanceInformation") && out.stderr.contains("unknown"), "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    check_schema(&doc);
    assert_eq!(doc["instances"].as_array().unwrap().len(), 1, "the filter keeps web-1 alone");
    assert_eq!(doc["instances"][0]["routes"]["ssm"], Value::Null);
    assert_eq!(doc["instances"][0]["routes"]["eice"], true);
    assert!(doc["scopes"][0]["warnings"][0].as_str().unwrap().contains("DescribeInstanceInformation"));
}

/// Runs `script` in an interactive bash (no rc files) with the world's environment and the
/// broker first on PATH.
fn bash(world: &World, script: &str) -> Output {
    let file = world.path("completion-test.sh");
    fs::write(&file, script).unwrap();
    let mut cmd = world.command("bash");
    let bin_dir = broker().parent().map(PathBuf::from).unwrap();
    cmd.env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()));
    cmd.args(["--norc", "--noprofile", "-i"]).arg(&file);
    world.run(cmd, Duration::from_secs(30))
}

// See: issue 20 (bash completion of subcommands and of cached hosts).
#[test]
fn issue_20_bash_completion_loads_and_completes_subcommands_and_cached_hosts() {
    let mut inventory = Inventory::demo();
    let mut evil = inventory.instances[0].clone();
    evil.id = "i-0e0e0e0e0e0e0e0e1".into();
    evil.name = Some("$(touch PWNED)".into());
    evil.private_ip = Some("127.0.7.99".parse().unwrap());
    evil.public_ip = None;
    inventory.instances.push(evil);
    let world = World::with(inventory, "");
    // Warms the lookup cache, as ssh connections would.
    assert_ok!(broker_in(&world, &["ls"]));
    let pwned = world.path("PWNED");
    let script = format!(
        r#"cd {dir}
source <(ec2-broker completions bash) || exit 3
complete -p ec2-broker
t() {{
    COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()
    local spec; spec=$(complete -p ec2-broker); spec=${{spec##*-F }}; spec=${{spec%% *}}
    "$spec" ec2-broker "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    echo "[$*] => ${{COMPREPLY[*]}}"
}}
t ec2-broker ss
t ec2-broker ssh-config --pre
t ec2-broker proxy --route ""
t ec2-broker proxy we
t ec2-broker doctor --json db
t ec2-broker known-hosts pin i-0a
t ec2-broker proxy --region ""
t ec2-broker proxy ""
"#,
        dir = world.dir.path().display()
    );
    let out = bash(&world, &script);
    assert_ok!(out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("complete ") && lines[0].ends_with(" ec2-broker"), "{}", out.stdout);
    let answers: BTreeMap<&str, &str> = lines[1..].iter().filter_map(|l| l.split_once(" => ")).collect();
    assert_eq!(answers["[ec2-broker ss]"], "ssh-config");
    assert_eq!(
        answers["[ec2-broker ssh-config --pre]"], "--prefix-profile",
        "options after a subcommand (clap-rs/clap#6421)"
    );
    assert_eq!(answers["[ec2-broker proxy --route ]"], "direct ssm eice serial auto");
    assert_eq!(answers["[ec2-broker proxy we]"], "web-1", "a cached host");
    assert_eq!(answers["[ec2-broker doctor --json db]"], "db-1");
    assert_eq!(answers["[ec2-broker known-hosts pin i-0a]"], "i-0a1b2c3d4e5f60718");
    assert!(!answers["[ec2-broker proxy --region ]"].contains("web-1"), "an option's value is not a host");
    let all = answers["[ec2-broker proxy ]"];
    assert!(all.contains("api-1") && all.contains("i-0e0e0e0e0e0e0e0e1"), "{all}");
    assert!(!all.contains("touch"), "a Name that is not a plain word is not offered: {all}");
    assert!(!pwned.exists() && !Path::new("PWNED").exists(), "a Name from a tag was evaluated");
}

// See: issue 20 (zsh and fish get the same host completion).
#[test]
fn issue_20_zsh_script_parses_and_fish_completes_subcommands_and_cached_hosts() {
    let world = World::new();
    assert_ok!(broker_in(&world, &["ls"]));
    let bin_dir = broker().parent().map(PathBuf::from).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let zsh_script = world.path("_ec2-broker");
    let fish_script = world.path("ec2-broker.fish");
    for (shell, file) in [("zsh", &zsh_script), ("fish", &fish_script)] {
        let out = broker_in(&world, &["completions", shell]);
        assert_ok!(out);
        fs::write(file, &out.stdout).unwrap();
    }
    let mut cmd = world.command("zsh");
    cmd.arg("-n").arg(&zsh_script);
    assert_ok!(world.run(cmd, Duration::from_secs(10)));
    let mut cmd = world.command("fish");
    cmd.env("PATH", &path).arg("--no-config").arg("-c").arg(format!(
        "source {}; for line in 'ec2-broker ss' 'ec2-broker proxy we' 'ec2-broker known-hosts pin i-0a' 'ec2-broker ls --js'; \
         echo \"[$line] => \"(complete -C $line | string split -f1 \\t | string join ' '); end",
        fish_script.display()
    ));
    let out = world.run(cmd, Duration::from_secs(30));
    assert_ok!(out);
    for expected in [
        "[ec2-broker ss] => ssh-config",
        "[ec2-broker proxy we] => web-1",
        "[ec2-broker known-hosts pin i-0a] => i-0a1b2c3d4e5f60718",
        "[ec2-broker ls --js] => --json",
    ] {
        assert!(out.stdout.lines().any(|l| l == expected), "{expected}:\n{}", out.describe());
    }
}

// See: issue 20 (the man page passes groff's checks).
#[test]
fn issue_20_man_page_renders_without_warnings() {
    let mut cmd = Command::new(broker());
    cmd.arg("man");
    let page = run(cmd, Duration::from_secs(10));
    assert_ok!(page);
    assert!(page.stdout.contains(".SS \"ec2-broker ssh-config\""));
    let roff = std::env::temp_dir().join(format!("ec2-broker-{}.1", std::process::id()));
    fs::write(&roff, &page.stdout).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("man --warnings -l - < \"$1\"")
        .arg("sh")
        .arg(&roff)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("LC_ALL", "C.UTF-8");
    let out = run(cmd, Duration::from_secs(30));
    let _ = fs::remove_file(&roff);
    assert_ok!(out);
    assert_eq!(out.stderr, "", "groff warnings:\n{}", out.stderr);
    for text in ["COMMANDS", "ec2-broker ls", "--prefix-profile", "EXIT STATUS", "instances.json"] {
        assert!(out.stdout.contains(text), "{text}:\n{}", out.stdout);
    }
}
