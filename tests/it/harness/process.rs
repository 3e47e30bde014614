//! Looking at the broker process from outside: its pid (from its log), liveness, CPU time.

use std::fs;

use super::World;

/// The broker's pid, from the `pid=` field of its log span.
pub fn broker_pid(world: &World) -> u32 {
    let log = fs::read_to_string(&world.broker_log).unwrap_or_default();
    log.split("pid=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid in the broker log:\n{log}"))
}

/// Whether `pid` runs (a zombie waiting for its reaper counts as gone).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}
