//! `ec2-lab bench-warm`: `ssh web-1 true` through `--route auto`, cold (no caches) and warm
//! (lookup and route cached), against plain ssh to the same sshd with a key it already trusts,
//! with every API call delayed by 30 ms (issue 7's benchmark). Reports medians and the API calls
//! each connection made. Then a burst (issue 19): [`BURST`] `ssh web-1 true` in a row from cold
//! caches, then as many plain ssh with a pushed key: the API calls of the whole burst and the
//! median time each connection adds, against their targets.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use anyhow::ensure;

use crate::demo::{find_broker, write_ssh_config};
use crate::inventory::LAB_ADMIN_PRIVATE_KEY;
use crate::{Inventory, Lab};

const WEB_1: &str = "i-0a1b2c3d4e5f60718";
/// The delay added to every API answer.
pub const API_LATENCY: Duration = Duration::from_millis(30);

/// Connections in the burst row.
pub const BURST: usize = 20;
/// The burst row's targets: API calls in all, and added time per connection.
const BURST_CALLS_TARGET: usize = 2;
const BURST_ADDED_TARGET_MS: f64 = 5.0;

/// Runs `runs` rounds of (plain, cold, warm), alternating, then the burst.
pub fn run_bench_warm(runs: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-warm-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let lab = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    lab.state().set_faults(|f| f.latency = API_LATENCY);
    let config = write_ssh_config(&lab, &broker, &dir, "--route auto")?.display().to_string();
    let home = dir.join("home");
    fs::create_dir_all(&home)?;
    let key = dir.join("lab-admin");
    fs::write(&key, LAB_ADMIN_PRIVATE_KEY)?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
    let port = lab.ssh_port(WEB_1).to_string();
    let known = dir.join("known_hosts").display().to_string();

    let mut env = lab.env();
    env.push(("HOME".into(), home.display().to_string()));
    let log = dir.join("broker.log");
    env.push(("EC2_BROKER_LOG".into(), "info".into()));
    env.push(("EC2_BROKER_LOG_FILE".into(), log.display().to_string()));
    // The broker's own time from start to route open, from its last "route open" log line.
    let own = || crate::bench_placement::handover(&log);
    let run = |program: &str, args: &[&str]| -> anyhow::Result<(Duration, Vec<String>)> {
        let before = lab.state().calls().len();
        let took = crate::bench::timed_run(program, args, &env)?;
        let calls =
            lab.state().calls()[before..].iter().filter(|c| c.service != "imds").map(|c| c.operation.clone()).collect();
        Ok((took, calls))
    };
    let plain_args = [
        "-F",
        "/dev/null",
        "-i",
        &key.display().to_string(),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        &format!("UserKnownHostsFile={known}"),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        &port,
        "ec2-user@127.0.1.10",
        "true",
    ]
    .map(str::to_string);
    let plain_args: Vec<&str> = plain_args.iter().map(String::as_str).collect();
    let broker_args = ["-F", config.as_str(), "web-1", "true"];
    // The known_hosts the ssh_config names also vouches for the address plain ssh dials.
    let host_key = &lab.instance(WEB_1).sshd.host_public_key;
    let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    fs::write(&known, format!("{}[127.0.1.10]:{port} {host_key}\n", fs::read_to_string(&known)?))?;

    // Plain ssh with a key pushed to the instance's metadata as a push would: the same
    // instance-side AuthorizedKeysCommand work as through the broker.
    let pushed_key = dir.join("pushed");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&pushed_key).output()?;
    ensure!(out.status.success(), "ssh-keygen failed");
    let pushed_pub = fs::read_to_string(pushed_key.with_extension("pub"))?.trim().to_string();
    let pushed_path = pushed_key.display().to_string();
    let pushed_args: Vec<&str> =
        plain_args.iter().map(|a| if *a == key.display().to_string() { pushed_path.as_str() } else { a }).collect();

    let cache = home.join(".cache/ec2-broker");
    let (mut plain, mut pushed, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cold_own, mut warm_own) = (Vec::new(), Vec::new());
    let (mut cold_calls, mut warm_calls) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(run("ssh", &plain_args)?.0);
        lab.state().advance(Duration::from_secs(61));
        lab.state().push_key(WEB_1, "ec2-user", &pushed_pub);
        pushed.push(run("ssh", &pushed_args)?.0);
        let _ = fs::remove_dir_all(&cache);
        let (t, c) = run("ssh", &broker_args)?;
        cold.push(t);
        cold_calls = c;
        cold_own.extend(own());
        let (t, c) = run("ssh", &broker_args)?;
        warm.push(t);
        warm_calls = c;
        warm_own.extend(own());
    }
    let (p, q) = (median(&mut plain), median(&mut pushed));
    let (c, w) = (median(&mut cold), median(&mut warm));
    let ms = |d: Duration| d.as_millis();
    let (co, wo) = (median(&mut cold_own), median(&mut warm_own));
    println!("ssh web-1 true, median of {runs}, every API call delayed {} ms:", ms(API_LATENCY));
    println!("  plain ssh, key in authorized_keys:         {} ms", ms(p));
    println!("  plain ssh, key pushed to IMDS beforehand:  {} ms", ms(q));
    println!(
        "  --route auto, cold (no caches):            {} ms (+{} ms over the pushed-key baseline), broker start to route open {} ms, API calls {cold_calls:?}",
        ms(c),
        ms(c.saturating_sub(q)),
        ms(co)
    );
    println!(
        "  --route auto, warm (cached lookup):        {} ms (+{} ms over the pushed-key baseline), broker start to route open {} ms, API calls {warm_calls:?}",
        ms(w),
        ms(w.saturating_sub(q)),
        ms(wo)
    );

    // The burst: cold caches and no key kept, then BURST connections in a row; then as many plain
    // ssh with a freshly pushed key (the same instance-side work).
    let _ = fs::remove_dir_all(&cache);
    let _ = fs::remove_dir_all(dir.join("keys"));
    let (mut burst, mut burst_plain, mut burst_own, mut burst_calls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BURST {
        let (t, c) = run("ssh", &broker_args)?;
        burst.push(t);
        burst_calls.extend(c);
        burst_own.extend(own());
    }
    for _ in 0..BURST {
        lab.state().push_key(WEB_1, "ec2-user", &pushed_pub);
        burst_plain.push(run("ssh", &pushed_args)?.0);
    }
    let (b, bp, bo) = (median(&mut burst), median(&mut burst_plain), median(&mut burst_own));
    let added = b.as_secs_f64() * 1e3 - bp.as_secs_f64() * 1e3;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "burst, {BURST} x ssh web-1 true in a row from cold caches, every API call delayed {} ms:",
        ms(API_LATENCY)
    );
    println!(
        "  API calls in all:                          {} (target <= {BURST_CALLS_TARGET}: {}) {burst_calls:?}",
        burst_calls.len(),
        verdict(burst_calls.len() <= BURST_CALLS_TARGET)
    );
    println!(
        "  added per connection, median:              {added:+.1} ms over plain ssh with a pushed key ({} ms vs {} ms; target <= {BURST_ADDED_TARGET_MS} ms: {}); broker start to route open {} ms; plain ssh with the key in authorized_keys {} ms (rounds above)",
        ms(b),
        ms(bp),
        verdict(added <= BURST_ADDED_TARGET_MS),
        ms(bo),
        ms(p)
    );
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

pub(crate) fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
