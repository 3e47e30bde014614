//! `ec2-lab bench`: the broker's direct route against plain ssh to the same sshd, in one run.
//!
//! - `ssh HOST true` wall time, alternating three ways (median and p90): through the broker; plain
//!   ssh with its key in the instance's `authorized_keys` (a user whose own key works); plain ssh
//!   with its key placed in IMDS as a push would (the same AuthorizedKeysCommand path as the
//!   broker's). Plus the broker's own time from start to route open, from its log;
//! - scp of an incompressible file up and down, broker vs plain (MB/s and ratio).
//!
//! The lab clock moves 61 s before every run, so exactly one pushed key is live and the lab's
//! AuthorizedKeysCommand (one `ssh-keygen` per live key) costs the same every time.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::bench_cpu::{self, CpuByProgram, CpuSampler};
use crate::demo::{find_broker, remote_dir, write_ssh_config};
use crate::{Inventory, Lab};

const WEB_1: &str = "i-0a1b2c3d4e5f60718";

/// Runs the benchmark; `runs` login round trips per side, `mib` MiB for scp.
pub fn run_bench(runs: usize, mib: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let lab = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    let config = write_ssh_config(&lab, &broker, &dir, "")?;
    let env = lab.env();

    // The plain side: its own key, placed in the lab before each run.
    let plain_key = dir.join("plain_key");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&plain_key).output()?;
    ensure!(out.status.success(), "ssh-keygen failed");
    let plain_pub = fs::read_to_string(plain_key.with_extension("pub"))?.trim().to_string();
    let port = lab.ssh_port(WEB_1);
    // A second key that the AMI's authorized_keys holds: the "own key works" baseline.
    let file_key = dir.join("file_key");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&file_key).output()?;
    ensure!(out.status.success(), "ssh-keygen failed");
    let authorized = &lab.instance(WEB_1).sshd.authorized_keys;
    let ami = fs::read_to_string(authorized)?;
    fs::write(authorized, format!("{ami}{}", fs::read_to_string(file_key.with_extension("pub"))?))?;
    let mut text = fs::read_to_string(&config)?;
    for (alias, key) in [("plain", &plain_key), ("filekey", &file_key)] {
        text.insert_str(
            0,
            &format!(
                "Host {alias}\n    HostName 127.0.1.10\n    Port {port}\n    User ec2-user\n    IdentityFile {}\n    \
                 IdentitiesOnly yes\n    IdentityAgent none\n    ProxyCommand none\n\n",
                key.display()
            ),
        );
    }
    fs::write(&config, text)?;
    let host_key = &lab.instance(WEB_1).sshd.host_public_key;
    let host_key = host_key.rsplit_once(' ').map_or(host_key.as_str(), |(k, _)| k);
    let known_hosts = dir.join("known_hosts");
    let known = fs::read_to_string(&known_hosts)?;
    fs::write(&known_hosts, format!("{known}[127.0.1.10]:{port} {host_key}\n"))?;
    let cfg = config.display().to_string();
    let broker_log = dir.join("broker.log");
    let mut env = env;
    env.push(("EC2_BROKER_LOG".into(), "info".into()));
    env.push(("EC2_BROKER_LOG_FILE".into(), broker_log.display().to_string()));
    // Every run pushes (the lab clock jumps 61 s between runs, past any key the broker would
    // reuse; bench-warm measures reuse).
    env.push(("EC2_BROKER_KEY_REUSE".into(), "0".into()));
    let fresh_clock = || lab.state().advance(Duration::from_secs(61));
    let push_plain = || {
        fresh_clock();
        lab.state().push_key(WEB_1, "ec2-user", &plain_pub)
    };
    let run = |program: &str, args: &[&str]| timed_run(program, args, &env);

    // Warm up both paths (page cache, sshd binary, first connection).
    push_plain();
    run("ssh", &["-F", &cfg, "plain", "true"])?;
    run("ssh", &["-F", &cfg, "web-1", "true"])?;

    let _ = fs::remove_file(&broker_log);
    let (mut via_broker, mut plain, mut file) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        fresh_clock();
        via_broker.push(run("ssh", &["-F", &cfg, "web-1", "true"])?);
        push_plain();
        plain.push(run("ssh", &["-F", &cfg, "plain", "true"])?);
        fresh_clock();
        file.push(run("ssh", &["-F", &cfg, "filekey", "true"])?);
    }
    let mut own: Vec<Duration> = fs::read_to_string(&broker_log)?
        .lines()
        .filter_map(|l| l.split("elapsed_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .map(Duration::from_millis)
        .collect();
    ensure!(own.len() == runs, "expected {runs} 'route open' lines in the broker log, found {}", own.len());
    let mut report = String::new();
    let _ = writeln!(report, "ssh web-1 true, {runs} runs each, alternating (release build):");
    for (label, v) in [
        ("plain, key in authorized_keys", &mut file),
        ("plain, key pushed to IMDS", &mut plain),
        ("through ec2-broker", &mut via_broker),
    ] {
        let _ = writeln!(report, "  {label:<30} median {:>7.1} ms   p90 {:>7.1} ms", ms(pct(v, 50)), ms(pct(v, 90)));
    }
    let _ = writeln!(
        report,
        "  broker's own time, start to route open (DescribeInstances, push and connect): median {:.0} ms, p90 {:.0} ms",
        ms(pct(&mut own, 50)),
        ms(pct(&mut own, 90))
    );

    let remote = remote_dir(&dir, "ec2-user")?;
    let local = dir.join("payload.bin");
    write_random(&local, mib << 20, 0x2545_f491_4f6c_dd1d)?;
    let remote_file = |host: &str| format!("{host}:{}/payload.bin", remote.display());
    let local_s = local.display().to_string();
    let back = dir.join("payload.back").display().to_string();
    // Alternate plain and broker in every repetition, so drift (page cache, CPU clock) hits both.
    let hosts = [("plain ssh", "filekey"), ("through broker", "web-1")];
    let mut times: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    // CPU by program and wall seconds, per variant and direction, summed over the runs.
    let mut cpu: [[(CpuByProgram, f64); 2]; 2] = Default::default();
    for _ in 0..5 {
        for (i, (label, host)) in hosts.iter().enumerate() {
            for (dir, (from, to)) in
                [(local_s.clone(), remote_file(host)), (remote_file(host), back.clone())].into_iter().enumerate()
            {
                fresh_clock();
                let sampler = CpuSampler::start();
                let took = run("scp", &["-q", "-F", &cfg, &from, &to])?;
                bench_cpu::add(&mut cpu[i][dir].0, &sampler.stop());
                cpu[i][dir].1 += took.as_secs_f64();
                match dir {
                    0 => times[i].0.push(took),
                    _ => times[i].1.push(took),
                }
            }
            ensure!(fs::read(&back)? == fs::read(&local)?, "scp through {label} changed the file");
        }
    }
    let mbps = |d: Duration| (mib as f64 * 1.048_576) / d.as_secs_f64();
    let rows: Vec<(&str, f64, f64)> = hosts
        .iter()
        .zip(times.iter_mut())
        .map(|((label, _), (up, down))| (*label, mbps(pct(up, 50)), mbps(pct(down, 50))))
        .collect();
    let _ = writeln!(report, "scp {mib} MiB incompressible, median of 5, alternating (MB/s):");
    for (label, up, down) in &rows {
        let _ = writeln!(report, "  {label:<16} up {up:>7.1}   down {down:>7.1}");
    }
    let _ = writeln!(
        report,
        "  broker / plain   up {:>6.1} %  down {:>6.1} %   (target >= 95 %)",
        100.0 * rows[1].1 / rows[0].1,
        100.0 * rows[1].2 / rows[0].2
    );
    // ssh and sshd each run their cipher on one core; the broker and scp share the two cores with
    // them, so the rows below show which program was at (or near) 100 % of a core.
    let _ = writeln!(report, "  CPU during the copies, as shares of one core (2 cores = 200 %):");
    for ((label, _), per_dir) in hosts.iter().zip(&cpu) {
        for (direction, (by, wall)) in ["up", "down"].iter().zip(per_dir) {
            let _ = writeln!(report, "    {label:<16} {direction:<5} {}", bench_cpu::describe(by, *wall));
        }
    }
    print!("{report}");
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[((v.len() - 1) * p) / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes `len` bytes of incompressible data (a xorshift stream seeded by `seed`).
pub fn write_random(path: &Path, len: usize, seed: u64) -> std::io::Result<()> {
    let mut x: u64 = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    fs::write(path, data)?;
    Ok(())
}

/// Runs `program args` with `env` and stdin null; its wall time, or an error with its stderr.
pub(crate) fn timed_run(program: &str, args: &[&str], env: &[(String, String)]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(started.elapsed())
}
