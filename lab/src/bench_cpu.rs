//! Where a benchmark's CPU goes: every process's user + system time while one command runs,
//! summed by program name (`ssh`, `sshd`, `scp`, `ec2-broker`, and this lab process, whose
//! threads are the AWS doubles and the SSM agent).
//!
//! A thread samples `/proc/*/stat` every 20 ms (its own reading is part of the lab's share); a process's share is its last sample minus its
//! first (0 for one that started during the run). A process that exits loses at most its last
//! 20 ms, so short-lived helpers are undercounted a little; the figures are shares of a run that
//! lasts seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// CPU seconds by program name.
pub type CpuByProgram = BTreeMap<String, f64>;

/// A running sampler; [`CpuSampler::stop`] gives the totals.
pub struct CpuSampler {
    done: Arc<AtomicBool>,
    thread: JoinHandle<CpuByProgram>,
}

impl CpuSampler {
    /// Starts sampling: processes alive now count from their current CPU time.
    pub fn start() -> CpuSampler {
        let done = Arc::new(AtomicBool::new(false));
        let before = snapshot();
        let thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                // pid → (program, CPU at first sight, CPU at last sight)
                let mut seen: BTreeMap<u32, (String, f64, f64)> =
                    before.into_iter().map(|(pid, (name, cpu))| (pid, (name, cpu, cpu))).collect();
                loop {
                    let last_round = done.load(Ordering::Relaxed);
                    for (pid, (name, cpu)) in snapshot() {
                        seen.entry(pid)
                            .and_modify(|e| {
                                if e.0 == name {
                                    e.2 = e.2.max(cpu);
                                }
                            })
                            .or_insert((name, 0.0, cpu));
                    }
                    if last_round {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let mut by: CpuByProgram = BTreeMap::new();
                for (name, first, last) in seen.into_values() {
                    if last > first {
                        *by.entry(name).or_default() += last - first;
                    }
                }
                by
            })
        };
        CpuSampler { done, thread }
    }

    /// Stops sampling (after one last round) and returns CPU seconds by program.
    pub fn stop(self) -> CpuByProgram {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Adds `more` into `total`.
pub fn add(total: &mut CpuByProgram, more: &CpuByProgram) {
    for (name, s) in more {
        *total.entry(name.clone()).or_default() += s;
    }
}

/// "ssh 0.49 s, sshd 0.78 s, …" over `wall` seconds, as shares of one core, largest first,
/// leaving out programs under 1 %.
pub fn describe(cpu: &CpuByProgram, wall: f64) -> String {
    let mut rows: Vec<(&String, &f64)> = cpu.iter().filter(|(_, s)| **s / wall >= 0.01).collect();
    rows.sort_by(|a, b| b.1.total_cmp(a.1));
    let mut out = String::new();
    for (i, (name, s)) in rows.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{name} {:.0} %", 100.0 * **s / wall);
    }
    let total: f64 = cpu.values().sum();
    let _ = write!(out, " (all {:.0} % of one core)", 100.0 * total / wall);
    out
}

/// Every process's program name and CPU seconds now.
fn snapshot() -> Vec<(u32, (String, f64))> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// The program name (field 2, without its parentheses) and user + system CPU seconds (fields 14
/// and 15, in the USER_HZ ticks Linux fixes at 100 per second) of a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3: fields 14 and 15 are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) as f64 / 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_parses() {
        let line = "4242 (ec2 broker) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("ec2 broker".into(), 1.75)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_busy_child_is_counted() {
        let sampler = CpuSampler::start();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let cpu = sampler.stop();
        assert!(cpu.get("sh").copied().unwrap_or(0.0) > 0.0, "{cpu:?}");
    }
}
