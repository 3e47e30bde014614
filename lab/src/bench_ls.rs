//! `ec2-lab bench-ls`: `ec2-broker ls` over a generated inventory of 2,000 instances in three
//! Regions behind one endpoint (`regions`), every API answer delayed by 30 ms (issue 20's
//! benchmark). Reports wall time and the API calls by operation, for `ls --regions`,
//! `ls --all-regions` and `ssh-config --all-regions`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, ensure};

use crate::bench_warm::API_LATENCY;
use crate::demo::find_broker;
use crate::regions::{GENERATED_REGIONS, Regions, generated};

/// Runs the benchmark over `total` instances, each command `runs` times (the median is reported).
pub fn run_bench_ls(total: usize, runs: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-ls-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let regions = Regions::start(generated(total, 20), &dir.join("lab"))?;
    for lab in regions.labs() {
        lab.state().set_faults(|f| f.latency = API_LATENCY);
    }
    println!(
        "{total} instances in {} behind one endpoint, up in {} ms; every API answer delayed {} ms",
        GENERATED_REGIONS.join(", "),
        started.elapsed().as_millis(),
        API_LATENCY.as_millis()
    );
    let mut env = regions.env();
    env.push(("HOME".into(), dir.join("home").display().to_string()));
    let listed = GENERATED_REGIONS.join(",");
    let cases: [(&str, Vec<&str>); 3] = [
        ("ls --regions (3)", vec!["ls", "--json", "--regions", &listed]),
        ("ls --all-regions", vec!["ls", "--json", "--all-regions"]),
        ("ssh-config --all-regions", vec!["ssh-config", "--all-regions"]),
    ];
    let mut report = String::new();
    for (label, args) in cases {
        let mut times = Vec::new();
        let mut calls: BTreeMap<String, usize> = BTreeMap::new();
        let mut count = 0;
        for _ in 0..runs {
            let before: Vec<usize> = regions.labs().iter().map(|l| l.state().calls().len()).collect();
            let t = Instant::now();
            let out = Command::new(&broker)
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running ec2-broker {}", args.join(" ")))?;
            times.push(t.elapsed());
            ensure!(
                out.status.success(),
                "ec2-broker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            count = if args[0] == "ls" {
                let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
                json["instances"].as_array().map_or(0, Vec::len)
            } else {
                String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("Host ")).count()
            };
            calls = BTreeMap::new();
            for (lab, from) in regions.labs().iter().zip(&before) {
                for c in &lab.state().calls()[*from..] {
                    *calls.entry(c.operation.clone()).or_default() += 1;
                }
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        let total_calls: usize = calls.values().sum();
        let _ = writeln!(
            report,
            "{label}: {} ms wall (median of {runs}), {count} {}, {total_calls} API calls {calls:?}",
            median.as_millis(),
            if args[0] == "ls" { "instances listed" } else { "Host blocks" }
        );
    }
    print!("{report}");
    drop(regions);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}
