//! `ec2-lab bench-shell`: `ec2-broker shell` (issue 16's benchmark), in one run.
//!
//! 1. Keystroke round trip, the time from a byte typed on our terminal to its echo: through
//!    `ec2-broker shell web-1` and through `ssh -tt web-1` with `ProxyCommand ec2-broker proxy
//!    --route ssm` to the same instance, and through `shell` in a world whose Session Manager
//!    preferences require KMS; with the agent's pacing on (the real agent's 1 KiB / 1 ms) and off.
//!    The terminal is a real pty; the echo is waited for on a condition variable, not polled.
//! 2. Throughput of `shell HOST -- cat FILE` (an incompressible file, stdout to a file,
//!    checksummed) with KMS off and on, beside `ssh HOST cat FILE` through `proxy --route ssm`.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::demo::{find_broker, remote_dir, write_ssh_config};
use crate::pty::Pty;
use crate::scenario::Scenario;
use crate::{Inventory, Lab};

/// How long any one step may take before the benchmark gives up.
const STEP: Duration = Duration::from_secs(60);

/// Runs the benchmark: `keys` keystrokes per variant, `mib` MiB per unpaced transfer.
pub fn run_bench_shell(keys: usize, mib: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-shell-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let plain = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    let kms = Lab::start(Scenario::load("kms-required")?.inventory, &dir.join("lab-kms"))?;
    let ssm_cfg = write_ssh_config(&plain, &broker, &dir, "--route ssm")?;
    let bench = Bench { broker: &broker, dir: &dir };

    println!("keystroke round trip, typed byte to its echo on a real pty, {keys} keys each (ms):");
    for pacing in [true, false] {
        plain.state().set_ssm_faults(|f| f.pacing = pacing);
        kms.state().set_ssm_faults(|f| f.pacing = pacing);
        let pacing_label = if pacing { "agent pacing on" } else { "agent pacing off" };
        let variants: [(&str, Command); 3] = [
            ("shell web-1", bench.shell_cmd(&plain, &["web-1"])),
            ("ssh -tt via proxy --route ssm", bench.ssh_cmd(&plain, &ssm_cfg, &["-tt", "web-1"])),
            ("shell db-1, KMS required", bench.shell_cmd(&kms, &["db-1"])),
        ];
        let mut rows = Vec::new();
        for (label, cmd) in variants {
            match bench.keystrokes(cmd, keys) {
                Ok((setup, mut rtts)) => {
                    rtts.sort();
                    rows.push((label, setup, pct(&rtts, 50), pct(&rtts, 90), pct(&rtts, 99)));
                }
                Err(e) => println!("  {pacing_label:<17} {label:<31} failed: {e:#}"),
            }
        }
        for (label, setup, p50, p90, p99) in &rows {
            println!(
                "  {pacing_label:<17} {label:<31} median {:>6.2}  p90 {:>6.2}  p99 {:>6.2}   (prompt after {:>6.0})",
                ms(*p50),
                ms(*p90),
                ms(*p99),
                ms(*setup)
            );
        }
        if let [shell, ssh, kms_row] = rows.as_slice() {
            println!(
                "  {pacing_label:<17} median ratios: shell / ssh-over-ssm {:.2}, KMS on / off {:.2}",
                ms(shell.2) / ms(ssh.2),
                ms(kms_row.2) / ms(shell.2)
            );
        }
    }

    let file = remote_dir(&dir, "ec2-user")?.join("payload.bin");
    let mut report = String::new();
    for (pacing, size) in [(false, mib), (true, (mib / 16).max(1))] {
        plain.state().set_ssm_faults(|f| f.pacing = pacing);
        kms.state().set_ssm_faults(|f| f.pacing = pacing);
        crate::bench::write_random(&file, size << 20, 0x2545_f491_4f6c_dd1d)?;
        let f = file.to_str().context("a UTF-8 temp path")?;
        let pacing_label = if pacing { "agent pacing on" } else { "agent pacing off" };
        let _ = writeln!(report, "throughput, {size} MiB incompressible to stdout, {pacing_label} (MB/s):");
        let variants: [(&str, Command); 3] = [
            ("shell web-1 -- cat", bench.shell_cmd(&plain, &["web-1", "--", "cat", f])),
            ("ssh web-1 cat via --route ssm", bench.ssh_cmd(&plain, &ssm_cfg, &["web-1", "cat", f])),
            ("shell db-1 -- cat, KMS", bench.shell_cmd(&kms, &["db-1", "--", "cat", f])),
        ];
        let mut rates = Vec::new();
        for (label, cmd) in variants {
            match bench.download(cmd, &file) {
                Ok(took) => {
                    let rate = (size << 20) as f64 / took.as_secs_f64() / 1e6;
                    let _ = writeln!(report, "  {label:<31} {rate:>8.1}");
                    rates.push(rate);
                }
                Err(e) => {
                    let _ = writeln!(report, "  {label:<31} failed: {e:#}");
                }
            }
        }
        if let [shell, ssh, kms_rate] = rates.as_slice() {
            let _ = writeln!(
                report,
                "  ratios: KMS on / off {:.1} %, shell / ssh-over-ssm {:.1} %",
                100.0 * kms_rate / shell,
                100.0 * shell / ssh
            );
        }
        print!("{report}");
        report.clear();
    }
    let sessions = kms.ssm_sessions();
    let shells: Vec<_> = sessions.iter().filter(|s| s.kms_key.is_some()).collect();
    ensure!(!shells.is_empty(), "the KMS world saw no encrypted session");
    let plaintext: u64 = shells.iter().map(|s| s.plaintext_outputs).sum();
    println!(
        "KMS world: {} encrypted sessions, {} encrypted outputs, {plaintext} plaintext outputs",
        shells.len(),
        shells.iter().map(|s| s.encrypted_outputs).sum::<u64>()
    );
    drop((plain, kms));
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

struct Bench<'a> {
    broker: &'a Path,
    dir: &'a Path,
}

impl Bench<'_> {
    fn shell_cmd(&self, lab: &Lab, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.broker);
        cmd.arg("shell").args(args).envs(lab.env()).env("TERM", "xterm");
        cmd
    }

    fn ssh_cmd(&self, lab: &Lab, cfg: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F").arg(cfg).args(args).envs(lab.env()).env("TERM", "xterm");
        cmd
    }

    /// Starts `cmd` on a fresh pty, waits for the prompt, types `keys` bytes one at a time and
    /// times each echo; returns the time to the prompt and the round trips.
    fn keystrokes(&self, cmd: Command, keys: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
        let pty = Pty::open(200, 50)?;
        let started = Instant::now();
        let mut child = Reaped(pty.spawn(cmd, &self.dir.join("keys.err"))?);
        let result = (|| {
            let at = pty.expect_after(0, "$ ", STEP).with_context(|| stderr_of(self.dir))?;
            let setup = started.elapsed();
            // Let the prompt settle (nothing else is printed after it).
            std::thread::sleep(Duration::from_millis(200));
            ensure!(pty.printed() == at, "output after the prompt: {:?}", &pty.screen()[at..]);
            let mut rtts = Vec::with_capacity(keys);
            for i in 0..keys {
                if i > 0 && i % 60 == 0 {
                    // Kill the line (^U) before the line wraps; not timed.
                    pty.type_text("\x15")?;
                    settle(&pty);
                }
                let before = pty.printed();
                let t = Instant::now();
                pty.type_text("x")?;
                if pty.wait_printed_beyond(before, Duration::from_secs(10)).is_none() {
                    bail!("no echo of key {i} within 10 s");
                }
                rtts.push(t.elapsed());
                settle(&pty);
            }
            pty.type_text("\x15exit\r")?;
            Ok((setup, rtts))
        })();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.0.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        result
    }

    /// Runs `cmd` with stdin from /dev/null and stdout to a file; checks the bytes.
    fn download(&self, mut cmd: Command, expected: &Path) -> anyhow::Result<Duration> {
        let got = self.dir.join("got.bin");
        let err = self.dir.join("got.err");
        cmd.stdin(Stdio::null()).stdout(File::create(&got)?).stderr(File::create(&err)?);
        let started = Instant::now();
        let status = cmd.status().context("starting the download")?;
        let took = started.elapsed();
        ensure!(status.success(), "{status}: {}", fs::read_to_string(&err).unwrap_or_default().trim());
        ensure!(fs::read(&got)? == fs::read(expected)?, "the bytes arrived changed");
        let _ = fs::remove_file(&got);
        Ok(took)
    }
}

/// A child killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits until nothing more is printed for 5 ms.
fn settle(pty: &Pty) {
    let mut seen = pty.printed();
    while let Some(n) = pty.wait_printed_beyond(seen, Duration::from_millis(5)) {
        seen = n;
    }
}

fn stderr_of(dir: &Path) -> String {
    format!("its stderr: {}", fs::read_to_string(dir.join("keys.err")).unwrap_or_default().trim())
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
