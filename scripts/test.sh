#!/usr/bin/env bash
# README command 2: install what the tests need (idempotent), then build and run every test:
# formatting, clippy with warnings as errors, doc tests, and the whole workspace under nextest
# (unit tests, emulator conformance, CRD drift and schema checks, BGP codec/FSM properties,
# router interop in network namespaces, controller and speaker against the emulator), and a
# short fuzz run of the BGP decoder and state machine; the Helm chart validated by real tools,
# and the static release binaries the images ship.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH="$PWD/.tools/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "CRD YAML is up to date"
cargo run -q --locked -p ferrolb-shared --bin crdgen -- --check

step "doc tests"
cargo test --workspace --doc --locked

step "README command 1 (the lab) runs"
scripts/lab.sh --once

step "fuzz smoke run (libFuzzer, 20 s per target; the long run is scripts/fuzz.sh 3600)"
scripts/fuzz.sh 20

step "Helm chart: lint, render, schemas (Kubernetes 1.33 and 1.37, CRDs), alert rules"
scripts/validate-chart.sh

step "static release binaries (what the images ship; --fast: no LTO, for CI time)"
docker/build-static.sh --fast

step "all tests (nextest)"
cargo nextest run --workspace --locked --no-fail-fast

echo "test.sh: all green in $(( $(date +%s) - start )) s"
