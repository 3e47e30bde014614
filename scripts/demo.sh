#!/usr/bin/env bash
# Starts the local lab, runs ssh, scp and rsync through `ec2-broker proxy` against it, and logs in
# at a serial console with `ec2-broker console`.
# Needs root (the lab's sshd runs as root and the lab may create the OS user ec2-user).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked --bins
exec target/debug/ec2-lab demo
