//! `ec2-lab bench-routes`: the broker's eice and ssm routes against its direct route, in one run.
//!
//! scp of an incompressible file up and down: direct route (web-1) against the eice route (web-1
//! through the lab's Instance Connect Endpoint); then direct against the SSM route (db-1) with the
//! agent's 1 KiB + 1 ms pacing (realistic: the real agent paces, spec §9.4) and with pacing off
//! (the client's own ceiling). The pacing ceiling is what the agent could send if everything but
//! its pacing sleeps took no time: bytes sent / time spent sleeping, from the agent's counters.
//! The broker's peak RSS (VmHWM) is sampled from /proc while each transfer runs.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::bench_cpu::{self, CpuByProgram, CpuSampler};
use crate::demo::{find_broker, remote_dir, write_ssh_config};
use crate::{Inventory, Lab};

/// Runs the benchmark: `eice_mib` MiB for direct vs eice, `ssm_mib` MiB for direct vs ssm.
pub fn run_bench_routes(eice_mib: usize, ssm_mib: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-routes-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let lab = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    let direct_dir = dir.join("direct");
    let ssm_dir = dir.join("ssm");
    let eice_dir = dir.join("eice");
    for d in [&direct_dir, &ssm_dir, &eice_dir] {
        fs::create_dir_all(d)?;
    }
    let direct_cfg = write_ssh_config(&lab, &broker, &direct_dir, "")?.display().to_string();
    let ssm_cfg = write_ssh_config(&lab, &broker, &ssm_dir, "--route ssm")?.display().to_string();
    let eice_cfg = write_ssh_config(&lab, &broker, &eice_dir, "--route eice")?.display().to_string();
    let mut env = lab.env();
    // Every run pushes: the SSM section moves the lab clock 61 s per run, past any key the
    // broker would reuse (bench-warm measures reuse).
    env.push(("EC2_BROKER_KEY_REUSE".into(), "0".into()));

    let remote = remote_dir(&dir, "ec2-user")?;
    let back = dir.join("payload.back");
    let back_s = back.display().to_string();
    let remote_file = |host: &str| format!("{host}:{}/payload.bin", remote.display());

    // The lab clock moves 61 s before each SSM-section run so one pushed key is live (the lab's
    // AuthorizedKeysCommand costs the same every time); not in the EICE section, whose endpoint
    // would then see the presigned URLs as expired.
    let scp = |cfg: &str, from: &str, to: &str, advance: bool| -> anyhow::Result<(Duration, Rss, CpuByProgram)> {
        if advance {
            lab.state().advance(Duration::from_secs(61));
        }
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = Rss::default();
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(broker_rss());
                    std::thread::sleep(Duration::from_millis(20));
                }
                peak
            })
        };
        let cpu = CpuSampler::start();
        let started = Instant::now();
        let out = Command::new("scp")
            .args(["-q", "-F", cfg, from, to])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .context("running scp")?;
        let took = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or_default();
        let cpu = cpu.stop();
        ensure!(out.status.success(), "scp {from} {to} failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok((took, peak, cpu))
    };

    let mut report = String::new();
    for (title, mib, advance, variants) in [
        (
            "direct vs eice",
            eice_mib,
            false,
            vec![("direct route", &direct_cfg, "web-1", true), ("eice route", &eice_cfg, "web-1", true)],
        ),
        (
            "direct vs ssm",
            ssm_mib,
            true,
            vec![
                ("direct route", &direct_cfg, "web-1", true),
                ("ssm route, agent pacing off", &ssm_cfg, "db-1", false),
                ("ssm route, agent pacing on", &ssm_cfg, "db-1", true),
            ],
        ),
    ] {
        let local = dir.join("payload.bin");
        crate::bench::write_random(&local, mib << 20, 0x9e37_79b9_7f4a_7c15)?;
        let local_s = local.display().to_string();
        let mbps = |d: Duration| (mib as f64 * 1.048_576) / d.as_secs_f64();
        let _ = writeln!(
            report,
            "{title}: scp {mib} MiB incompressible, median of {REPS} alternating runs (the paced SSM run once), release build (MB/s):"
        );
        let n = variants.len();
        let mut ups: Vec<Vec<Duration>> = vec![Vec::new(); n];
        let mut downs: Vec<Vec<Duration>> = vec![Vec::new(); n];
        let mut rss = vec![Rss::default(); n];
        // CPU by program and wall seconds, summed over runs.
        let mut cpu: Vec<(CpuByProgram, f64)> = vec![Default::default(); n];
        let mut ceilings: Vec<Option<(f64, f64)>> = vec![None; n];
        let mut failed: Vec<Option<String>> = vec![None; n];
        for rep in 0..REPS {
            for (i, (label, cfg, host, pacing)) in variants.iter().enumerate() {
                // The paced SSM download runs at about 0.5 MB/s: once is enough (and takes minutes).
                let paced_ssm = *pacing && *host == "db-1";
                if failed[i].is_some() || (paced_ssm && rep > 0) {
                    continue;
                }
                lab.state().set_ssm_faults(|f| f.pacing = *pacing);
                let sessions_before = lab.ssm_sessions().len();
                let measured = (|| -> anyhow::Result<_> {
                    let (up, rss_up, cpu_up) = scp(cfg, &local_s, &remote_file(host), advance)?;
                    let (down, rss_down, cpu_down) = scp(cfg, &remote_file(host), &back_s, advance)?;
                    ensure!(fs::read(&back)? == fs::read(&local)?, "scp through the {label} changed the file");
                    let c = &mut cpu[i];
                    bench_cpu::add(&mut c.0, &cpu_up);
                    bench_cpu::add(&mut c.0, &cpu_down);
                    c.1 += (up + down).as_secs_f64();
                    Ok((up, down, rss_up.max(rss_down)))
                })();
                let _ = fs::remove_file(&back);
                let (up, down, peak) = match measured {
                    Ok(m) => m,
                    Err(e) => {
                        failed[i] = Some(format!("{e:#}"));
                        continue;
                    }
                };
                ups[i].push(up);
                downs[i].push(down);
                rss[i] = rss[i].max(peak);
                let sessions = lab.ssm_sessions();
                if paced_ssm && sessions.len() == sessions_before + 2 {
                    // The download session is the last one. Its agent counted the payload it read
                    // from sshd and the time it slept for pacing: `bytes / sleep` is the pacing
                    // ceiling; `bytes / download time` is what the client reached of it.
                    let s = sessions.last().expect("a session");
                    let slept = s.paced_sleep.as_secs_f64();
                    if slept > 0.0 {
                        let ceiling = s.bytes_from_port as f64 / slept / 1e6;
                        ceilings[i] = Some((ceiling, s.bytes_from_port as f64 / down.as_secs_f64() / 1e6));
                    }
                }
            }
        }
        let mut rows = Vec::new();
        for (i, (label, ..)) in variants.iter().enumerate() {
            if let Some(e) = &failed[i] {
                let _ = writeln!(report, "  {label:<28} failed: {e}");
                continue;
            }
            rows.push((
                *label,
                mbps(median(&mut ups[i])),
                mbps(median(&mut downs[i])),
                rss[i],
                ceilings[i],
                cpu[i].clone(),
            ));
        }
        for (label, up, down, rss, ceiling, (cpu, wall)) in &rows {
            let _ = write!(
                report,
                "  {label:<28} up {up:>7.1}   down {down:>7.1}   broker peak RSS {:>5.1} MiB (target <= 12 MiB; \
                 anonymous {:.1} + file-backed {:.1} MiB at the largest sample)",
                rss.hwm_kib as f64 / 1024.0,
                rss.anon_kib as f64 / 1024.0,
                rss.file_kib as f64 / 1024.0
            );
            if label.contains("pacing off") {
                let _ = write!(report, "   (target >= 100 MB/s each way)");
            }
            if let Some((c, achieved)) = ceiling {
                let _ = write!(
                    report,
                    "   (pacing ceiling {c:.3} MB/s of stream; download {achieved:.3} MB/s of stream = {:.1} % of it)",
                    100.0 * achieved / c
                );
            }
            let _ = writeln!(report);
            // On two cores ssh, sshd, the broker and the lab's doubles (ec2-lab) share 200 %:
            // what the broker and the doubles use is taken from ssh's and sshd's crypto.
            let _ = writeln!(report, "  {:<28} CPU: {}", "", bench_cpu::describe(cpu, *wall));
        }
        if let [direct, other, ..] = rows.as_slice() {
            // Issue 19's targets: EICE at least 90 % of direct; SSM unpaced at least 50 %.
            let target = if other.0.starts_with("eice") { 90 } else { 50 };
            let _ = writeln!(
                report,
                "  {} / {}   up {:>5.1} %   down {:>5.1} %   (target >= {target} %)",
                other.0,
                direct.0,
                100.0 * other.1 / direct.1,
                100.0 * other.2 / direct.2
            );
        }
        print!("{report}");
        report.clear();
    }
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// Repetitions of each fast variant, alternating, so drift hits all of them.
const REPS: usize = 3;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A broker's memory at one sample (KiB): its peak so far (VmHWM), and the resident set split
/// into anonymous pages (heap, stacks, relocated data) and file-backed ones (the binary's code
/// and read-only data, shared with the page cache).
#[derive(Debug, Clone, Copy, Default)]
struct Rss {
    hwm_kib: u64,
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
}

impl Rss {
    /// The larger peak, with the split of whichever sample was the largest.
    fn max(self, other: Rss) -> Rss {
        let hwm_kib = self.hwm_kib.max(other.hwm_kib);
        let larger = if other.rss_kib > self.rss_kib { other } else { self };
        Rss { hwm_kib, ..larger }
    }
}

/// The largest `ec2-broker proxy` process's memory (the bench runs one at a time).
fn broker_rss() -> Rss {
    let Ok(entries) = fs::read_dir("/proc") else { return Rss::default() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| is_broker(&e.path()))
        .filter_map(|e| fs::read_to_string(e.path().join("status")).ok())
        .map(|s| {
            let field = |name: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Rss {
                hwm_kib: field("VmHWM:"),
                rss_kib: field("VmRSS:"),
                anon_kib: field("RssAnon:"),
                file_kib: field("RssFile:"),
            }
        })
        .fold(Rss::default(), Rss::max)
}

fn is_broker(proc_dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else { return false };
    let mut args = cmdline.split(|b| *b == 0);
    let exe = args.next().unwrap_or_default();
    exe.ends_with(b"ec2-broker") && args.next() == Some(b"proxy".as_slice())
}
