//! `ec2-lab bench-cp`: `ec2-broker cp` downloading through the SSM route with the agent's 1 KiB +
//! 1 ms pacing on (as the real agent paces, spec §9.4), over one stream and over four. One
//! session cannot beat its agent's pacing; four sessions each have their own. The rate is the
//! file's size over the whole command's wall time (listing, logins and checksums included).

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::demo::{find_broker, remote_dir, write_ssh_config};
use crate::{Inventory, Lab};

/// The target of issue 19: four streams at least this many times one stream's rate.
const TARGET_RATIO: f64 = 3.5;

/// Runs the benchmark with a file of `mib` MiB.
pub fn run_bench_cp(mib: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-cp-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let lab = Lab::start(Inventory::demo(), &dir.join("lab"))?;
    let cfg = write_ssh_config(&lab, &broker, &dir, "--route ssm")?;
    let env = lab.env();
    let remote = remote_dir(&dir, "ec2-user")?;
    let source = remote.join("bundle.bin");
    crate::bench::write_random(&source, mib << 20, 0x0c0f_fee5)?;
    let want = sha256(&fs::read(&source)?);
    lab.state().set_ssm_faults(|f| f.pacing = true);

    let mut rates = Vec::new();
    println!(
        "cp over the ssm route, agent pacing on (1 KiB / 1 ms per session), {mib} MiB incompressible, release build:"
    );
    for streams in [1u32, 4] {
        let back = dir.join(format!("back-{streams}.bin"));
        let sessions_before = lab.ssm_sessions().len();
        let started = Instant::now();
        let out = Command::new(&broker)
            .arg("cp")
            .arg("-F")
            .arg(&cfg)
            .args(["--streams", &streams.to_string()])
            .arg(format!("db-1:{}", source.display()))
            .arg(&back)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .context("running ec2-broker cp")?;
        let took = started.elapsed();
        ensure!(out.status.success(), "cp --streams {streams} failed: {}", String::from_utf8_lossy(&out.stderr));
        let got = sha256(&fs::read(&back)?);
        let sessions = lab.ssm_sessions().len() - sessions_before;
        let rate = mb_per_s(mib, took);
        println!(
            "  --streams {streams}: {:6.2} s  {rate:5.2} MB/s  ({sessions} SSM sessions)  sha256 {}",
            took.as_secs_f64(),
            if got == want { "matches" } else { "DIFFERS" }
        );
        ensure!(got == want, "cp --streams {streams} changed the file");
        let _ = fs::remove_file(&back);
        rates.push(rate);
    }
    let ratio = rates[1] / rates[0];
    println!(
        "  4 streams / 1 stream: {ratio:.2}x   target >= {TARGET_RATIO}x   {}",
        if ratio >= TARGET_RATIO { "reached" } else { "SHORT" }
    );
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

fn mb_per_s(mib: usize, took: Duration) -> f64 {
    (mib as f64 * 1.048_576) / took.as_secs_f64()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}
