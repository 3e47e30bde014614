#!/usr/bin/env bash
# Installs the test dependencies if missing, then runs every test (unit, lab, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The docs' commands (tests/it/docs.rs) run ec2-lab as a user would: build every binary first.
cargo build --locked --bins --workspace
exec cargo test --locked
