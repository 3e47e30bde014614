//! `ec2-lab bench-known-hosts`: `ec2-broker known-hosts audit` of a generated 100 000-line
//! known_hosts file (half of it hashed) against a lab of 10 000 instances (issue 6's benchmark).
//! Reports wall time and the API calls the audit made, with and without reading console output,
//! and again with the consoles remembered by the first audit, each beside its target (issue 19).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, ensure};
use hmac::{Hmac, Mac};

use crate::demo::find_broker;
use crate::{Inventory, Lab};

/// Runs the benchmark with `instances` instances and `lines` known_hosts lines.
pub fn run_bench_known_hosts(instances: usize, lines: usize) -> anyhow::Result<()> {
    let broker = find_broker()?;
    let dir = std::env::temp_dir().join(format!("ec2-lab-bench-known-hosts-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    crate::demo::make_traversable(&dir)?;
    let started = Instant::now();
    let lab = Lab::start(Inventory::generated(instances, 6), &dir.join("lab"))?;
    println!("lab with {instances} instances up in {} ms", started.elapsed().as_millis());

    let file = dir.join("known_hosts");
    fs::write(&file, known_hosts(&lab, lines))?;
    println!("known_hosts: {lines} lines, half of them hashed");

    let mut report = String::new();
    // A cache directory of the benchmark's own: the first audit starts with no remembered console.
    let cache = dir.join("cache");
    let mut console_calls = Vec::new();
    for (label, extra) in [
        ("addresses and consoles, first audit", None),
        ("addresses and consoles, second audit", None),
        ("addresses only (--no-console)", Some("--no-console")),
    ] {
        let before = lab.state().calls().len();
        let mut cmd = Command::new(&broker);
        cmd.args(["known-hosts", "audit", "--json"]).args(extra).arg(&file).envs(lab.env());
        cmd.env("XDG_CACHE_HOME", &cache);
        let t = Instant::now();
        let out = cmd.output().context("running ec2-broker known-hosts audit")?;
        let took = t.elapsed();
        ensure!(matches!(out.status.code(), Some(0 | 1)), "audit failed: {}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for f in json["findings"].as_array().into_iter().flatten() {
            *kinds.entry(f["kind"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
        let mut calls: BTreeMap<String, usize> = BTreeMap::new();
        for c in &lab.state().calls()[before..] {
            *calls.entry(c.operation.clone()).or_default() += 1;
        }
        let consoles = calls.get("GetConsoleOutput").copied().unwrap_or(0);
        if extra.is_none() {
            console_calls.push(consoles);
        }
        let _ = writeln!(
            report,
            "audit, {label}: {} ms wall (target <= 1000 ms); API calls {calls:?}; findings {kinds:?}",
            took.as_millis()
        );
    }
    if let [first, second] = console_calls[..] {
        let _ = writeln!(
            report,
            "GetConsoleOutput calls of the second audit: {second} = {:.2} % of the first's {first} (target <= 1 %)",
            100.0 * second as f64 / first.max(1) as f64
        );
    }
    print!("{report}");
    drop(lab);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// Half plain lines (each instance's private and public address with its console key, the rest
/// addresses no instance has), half hashed names.
fn known_hosts(lab: &Lab, lines: usize) -> String {
    let state = lab.state();
    let mut out = String::new();
    let plain = lines / 2;
    let mut n = 0;
    'outer: for inst in &state.inventory.instances {
        let keys = state.host_keys(&inst.id);
        let Some(key) = keys.first() else { continue };
        let key: String = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        for ip in [inst.private_ip, inst.public_ip].into_iter().flatten() {
            if n == plain {
                break 'outer;
            }
            let _ = writeln!(out, "{ip} {key}");
            n += 1;
        }
    }
    let filler = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHlIyUPli2C+DZM+2WMDUmv0mT+LQ0Z79e+LxSm5RsL0";
    while n < plain {
        let _ = writeln!(out, "10.{}.{}.{} {filler}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        n += 1;
    }
    for i in 0..lines - plain {
        let salt: Vec<u8> = (0..20u32).map(|j| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(j) as u8).collect();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&salt).expect("any key length");
        mac.update(format!("host-{i}.example.com").as_bytes());
        let hash = &mac.finalize().into_bytes()[..20];
        let _ = writeln!(out, "|1|{}|{} {filler}", crate::base64::encode(&salt), crate::base64::encode(hash));
    }
    out
}
