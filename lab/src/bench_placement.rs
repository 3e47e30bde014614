//! `ec2-lab bench-placement` (issue 17's benchmark): `ssh web-1 true` with the short-lived key
//! placed by EC2 Instance Connect and by SSM Run Command, alternating in one run, every API call
//! delayed [`API_LATENCY`]: the wall time of each login and the broker's own time from start to
//! handing ssh the route (its first byte from the instance), medians. Key reuse is off so every
//! connection places a key. The lab's model of Run Command's delays is printed beside the figures:
//! `InvocationDoesNotExist` for [`DEFAULT_NOT_YET`] after `SendCommand`, then `Pending` until the
//! agent picks the command up, as the real service is eventually consistent.

use std::fs;
use std::time::Duration;

use crate::bench_warm::{API_LATENCY, median};
use crate::demo::{find_broker, write_ssh_config};
use crate::run_command::{DEFAULT_NOT_YET, PICKUP};
use crate::{Inventory, Lab};

/// Runs `runs` rounds of (Instance Connect, Run Command), alternating.
pub fn run_bench_placement(runs: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-placement-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let lab = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    lab.state().set_faults(|f| f.latency = API_LATENCY);
    let mut variants = Vec::new();
    for (label, placement) in [("Instance Connect", "instance-connect"), ("Run Command", "run-command")] {
        let sub = dir.join(placement);
        fs::create_dir_all(&sub)?;
        let args = format!("--route direct --key-placement {placement}");
        let config = write_ssh_config(&lab, &broker, &sub, &args)?.display().to_string();
        let log = sub.join("broker.log");
        let mut env = lab.env();
        env.push(("HOME".into(), sub.join("home").display().to_string()));
        env.push(("EC2_BROKER_KEY_REUSE".into(), "0".into()));
        env.push(("EC2_BROKER_LOG".into(), "info".into()));
        env.push(("EC2_BROKER_LOG_FILE".into(), log.display().to_string()));
        variants.push((label, config, log, env, Vec::new(), Vec::new()));
    }
    for _ in 0..runs {
        for (_, config, log, env, walls, own) in &mut variants {
            walls.push(crate::bench::timed_run("ssh", &["-F", config, "web-1", "true"], env)?);
            own.extend(handover(log));
        }
    }
    let ms = |d: Duration| d.as_millis();
    println!(
        "ssh web-1 true, median of {runs} alternating runs, every API call delayed {} ms; the lab's Run Command \
         model: InvocationDoesNotExist for {} ms after SendCommand, Pending {} ms before the agent picks it up:",
        ms(API_LATENCY),
        ms(DEFAULT_NOT_YET),
        ms(PICKUP)
    );
    for (label, _, _, _, walls, own) in &mut variants {
        println!(
            "  key placed by {label:<17} login {:>5} ms   broker start to first byte handed to ssh {:>5} ms",
            ms(median(walls)),
            ms(median(own))
        );
    }
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// The broker's time from start to handing ssh the route, from its last "route open" log line.
pub(crate) fn handover(log: &std::path::Path) -> Option<Duration> {
    let text = fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("route open, piping"))?;
    let ms = line.split("elapsed_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}
