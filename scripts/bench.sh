#!/usr/bin/env bash
# Benchmark (not a test): the broker's direct route vs plain ssh to the same lab sshd, in one run.
# Release build; prints login latency (median/p90 of 25) and scp 256 MiB throughput ratios.
# `scripts/bench.sh --quick` for a smaller run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked --release --bins
exec target/release/ec2-lab bench "$@"
