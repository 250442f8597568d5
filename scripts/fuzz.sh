#!/usr/bin/env bash
# Fuzzes the BGP decoder and session state machine with libFuzzer (cargo fuzz, nightly).
#
#   scripts/fuzz.sh            a smoke run, 20 s per target (part of scripts/test.sh)
#   scripts/fuzz.sh 3600       the long run: one hour per target
#
# New inputs go to a scratch directory; the committed seeds in bgp/fuzz/corpus/ are only read,
# so the repository stays clean. A crash fails the run and leaves its input under
# bgp/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain (this machine kind ships one; see shared/TOOLS.md)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo install cargo-fuzz"
  cargo install --locked -q cargo-fuzz
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd bgp/fuzz
for target in decode fsm; do
  mkdir -p "$scratch/$target"
  echo "fuzz.sh: $target for ${seconds}s"
  cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|INFO: Done)|panicked|ERROR|SUMMARY' || true
  # grep's status says nothing about the fuzzer's: look at the pipeline's first command.
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz.sh: $target found a crash" >&2; exit 1; }
done
echo "fuzz.sh: no crash"
