#!/usr/bin/env bash
# Installs the test dependencies if missing, then runs every test (unit, lab, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo test --locked
