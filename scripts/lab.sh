#!/usr/bin/env bash
# README command 1: the local lab.
#
# Installs what it needs (scripts/install-deps.sh), builds ferrolb, then runs `ferrolb-lab`
# (tests/e2e): the Kubernetes API emulator with ferrolb's CRDs, two controller replicas,
# three node network namespaces each running a speaker, and a router namespace running
# BIRD (or FRR) that peers with every node. The demo applies the example pool, peer and
# advertisement, creates a LoadBalancer Service with endpoints on two nodes, shows the IP
# the controller gave it and the router's route with both nodes as ECMP next hops, then
# marks one node's endpoint not ready and shows the router dropping that next hop.
#
# Every address lives inside the lab's own namespaces; nothing is configured outside them,
# and nothing is left running or configured after Ctrl-C, --once or `down`.
#
# Usage (as root):
#   scripts/lab.sh                 demo, then keep the lab up until Ctrl-C
#   scripts/lab.sh --once          demo, then tear everything down (used by scripts/test.sh)
#   scripts/lab.sh --router frr    the same with FRR as the router (combine with --once)
#   scripts/lab.sh down            remove whatever a previous lab left behind
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

once=0
router=bird
down=0
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --router) router=${2:?--router needs bird or frr}; shift ;;
    --router=*) router=${1#--router=} ;;
    down) down=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "lab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "lab.sh: the lab needs root (network namespaces); run it as root" >&2
  exit 1
fi

target=${CARGO_TARGET_DIR:-$root/target}
lab_bin="$target/debug/ferrolb-lab"

if [ "$down" = 1 ]; then
  cargo build -q --locked -p ferrolb-e2e --bin ferrolb-lab
  exec "$lab_bin" down
fi

scripts/install-deps.sh >/dev/null
export PATH="$root/.tools/bin:$PATH"
# The lab prints kubectl commands; name a kubectl that exists here.
if command -v kubectl >/dev/null 2>&1; then
  export FERROLB_LAB_KUBECTL=kubectl
else
  export FERROLB_LAB_KUBECTL=kubectl-1.35
fi

echo "lab: building"
cargo build -q --locked -p ferrolb-speaker -p ferrolb-controller -p ferrolb-e2e \
  --bin ferrolb-speaker --bin ferrolb-controller --bin ferrolb-lab

args=(run --router "$router")
[ "$once" = 1 ] && args+=(--once)
# exec: Ctrl-C reaches ferrolb-lab itself, which stops every process and deletes every
# namespace before it exits.
exec "$lab_bin" "${args[@]}"
