//! `ec2-lab`: `demo` runs ssh, scp and rsync through ec2-broker against the lab; `up` keeps the
//! lab running for use by hand; `bench` measures the broker against plain ssh; `bench-routes` the
//! eice and ssm routes against the direct route; `bench-known-hosts` the known_hosts audit; `bench-warm` cold and warm
//! connections through `--route auto`; `bench-ls` `ec2-broker ls` over 2,000 instances in three Regions.

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = match std::env::args().nth(1).as_deref() {
        Some("demo") => ec2_lab::demo::run_demo(),
        Some("up") => ec2_lab::demo::run_up(),
        Some("bench-routes") => {
            let quick = std::env::args().any(|a| a == "--quick");
            if quick {
                ec2_lab::bench_routes::run_bench_routes(16, 8)
            } else {
                ec2_lab::bench_routes::run_bench_routes(256, 128)
            }
        }
        Some("bench-known-hosts") => {
            let quick = std::env::args().any(|a| a == "--quick");
            if quick {
                ec2_lab::bench_known_hosts::run_bench_known_hosts(1_000, 10_000)
            } else {
                ec2_lab::bench_known_hosts::run_bench_known_hosts(10_000, 100_000)
            }
        }
        Some("bench-ls") => {
            let quick = std::env::args().any(|a| a == "--quick");
            ec2_lab::bench_ls::run_bench_ls(2_000, if quick { 1 } else { 5 })
        }
        Some("bench-warm") => {
            let quick = std::env::args().any(|a| a == "--quick");
            ec2_lab::bench_warm::run_bench_warm(if quick { 3 } else { 11 })
        }
        Some("bench") => {
            let quick = std::env::args().any(|a| a == "--quick");
            if quick { ec2_lab::bench::run_bench(5, 16) } else { ec2_lab::bench::run_bench(25, 256) }
        }
        _ => {
            eprintln!(
                "usage: ec2-lab demo | up | bench [--quick] | bench-routes [--quick] | bench-known-hosts [--quick] | bench-warm [--quick] | bench-ls [--quick]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ec2-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
