#!/usr/bin/env bash
# Benchmark: Established -> all 10k / 100k /32 in BIRD's and FRR's RIB, from
# `ferrolb-bgp announce` and from gobgpd side by side (see
# bgp/examples/bench_routers.rs). Needs root and scripts/install-deps.sh.
# Extra arguments go to the driver, e.g. `--runs 5 --sizes 10000`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p ferrolb-bgp --bins --examples
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/examples/bench_routers" --bin "$target/release/ferrolb-bgp" "$@"
