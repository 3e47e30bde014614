//! `ec2-lab`: `demo` runs ssh, scp and rsync through ec2-broker against the lab; `up` keeps the
//! lab running for use by hand.

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = match std::env::args().nth(1).as_deref() {
        Some("demo") => ec2_lab::demo::run_demo(),
        Some("up") => ec2_lab::demo::run_up(),
        _ => {
            eprintln!("usage: ec2-lab demo | up");
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
