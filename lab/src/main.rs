//! `ec2-lab`: `demo` runs ssh, scp and rsync through ec2-broker against the lab; `up` keeps the
//! lab running for use by hand or by scripts (scenarios, faults, an env file); `scenarios` lists
//! the built-in scenarios; the `bench*` subcommands measure the broker.

use std::process::ExitCode;

use clap::Parser;
use ec2_lab::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => ec2_lab::demo::run_demo(),
        Command::Up(args) => ec2_lab::up::run_up(args),
        Command::Scenarios => ec2_lab::up::print_scenarios(),
        Command::Bench(b) if b.quick => ec2_lab::bench::run_bench(5, 16),
        Command::Bench(_) => ec2_lab::bench::run_bench(25, 256),
        Command::BenchRoutes(b) if b.quick => ec2_lab::bench_routes::run_bench_routes(16, 8),
        Command::BenchRoutes(_) => ec2_lab::bench_routes::run_bench_routes(256, 128),
        Command::BenchKnownHosts(b) if b.quick => ec2_lab::bench_known_hosts::run_bench_known_hosts(1_000, 10_000),
        Command::BenchKnownHosts(_) => ec2_lab::bench_known_hosts::run_bench_known_hosts(10_000, 100_000),
        Command::BenchWarm(b) => ec2_lab::bench_warm::run_bench_warm(if b.quick { 3 } else { 11 }),
        Command::BenchPlacement(b) => ec2_lab::bench_placement::run_bench_placement(if b.quick { 3 } else { 11 }),
        Command::BenchShell(b) if b.quick => ec2_lab::bench_shell::run_bench_shell(40, 8),
        Command::BenchShell(_) => ec2_lab::bench_shell::run_bench_shell(300, 64),
        Command::BenchCp(b) => ec2_lab::bench_cp::run_bench_cp(if b.quick { 4 } else { 16 }),
        Command::BenchLs(b) => ec2_lab::bench_ls::run_bench_ls(2_000, if b.quick { 1 } else { 5 }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ec2-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
