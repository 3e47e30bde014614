#!/usr/bin/env bash
# Benchmarks (not tests), release build, one run each against the local lab:
#   1. the direct route vs plain ssh: login latency (median/p90 of 25) and scp 256 MiB;
#   2. the eice route vs direct (scp 256 MiB) and the ssm route vs direct (scp 128 MiB, agent pacing
#      off and on), with the broker's peak RSS;
#   3. known-hosts audit of 100 000 lines (half hashed) against 10 000 instances: time and API calls;
#   4. ssh through --route auto, cold and warm, with 30 ms API latency: added time and API calls;
#   4b. ssh with the key placed by Instance Connect vs by SSM Run Command (issue 17), 30 ms API latency;
#   5. ls over 2,000 instances in three Regions with 30 ms API latency: wall time and API calls;
#   6. ec2-broker shell: keystroke round trip against ssh over the ssm route, and `shell -- cat`
#      throughput with KMS off and on;
#   7. ec2-broker cp through the paced SSM agent: --streams 1 against --streams 4 (target >= 3.5x).
# `scripts/bench.sh --quick` for a smaller run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --locked --release --bins
target/release/ec2-lab bench "$@"
target/release/ec2-lab bench-routes "$@"
target/release/ec2-lab bench-known-hosts "$@"
target/release/ec2-lab bench-warm "$@"
target/release/ec2-lab bench-placement "$@"
target/release/ec2-lab bench-ls "$@"
target/release/ec2-lab bench-shell "$@"
exec target/release/ec2-lab bench-cp "$@"
