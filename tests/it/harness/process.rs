//! Looking at the broker process from outside: its pid (from its log), liveness, CPU time.

use std::fs;
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

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

/// Starts `ssh HOST 'echo ready; exec sleep 60'` and returns once the remote side printed
/// `ready`: the session is up and idle. Returns ssh and the broker's pid.
pub fn idle_session(world: &World, host: &str) -> (Child, u32) {
    let mut cmd = world.command("ssh");
    cmd.arg("-F").arg(&world.ssh_config).args([host, "echo ready; exec sleep 60"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut ssh = cmd.spawn().expect("starting ssh");
    let mut first = [0u8; 6];
    ssh.stdout.take().expect("piped stdout").read_exact(&mut first).expect("reading the remote's first line");
    assert_eq!(&first, b"ready\n");
    let pid = broker_pid(world);
    (ssh, pid)
}

/// Kills ssh without any goodbye (SIGKILL: the broker sees only stdin EOF / EPIPE) and returns
/// how long the broker `pid` took to go (at most 5 s is waited for).
pub fn kill_and_time_exit(mut ssh: Child, pid: u32) -> Duration {
    ssh.kill().expect("killing ssh");
    let _ = ssh.wait();
    let killed = Instant::now();
    while alive(pid) && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    killed.elapsed()
}
