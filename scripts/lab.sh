#!/usr/bin/env bash
# README command 1: the local lab.
#
# Today the lab is the emulated cluster: it builds ferrolb, starts the Kubernetes API emulator
# with ferrolb's CRDs installed, applies the demo IPAddressPool/BGPPeer/BGPAdvertisement, shows
# them with the real kubectl, and keeps serving until Ctrl-C. Speakers in node namespaces, the
# controller and a BIRD router join it as their issues land.
#
# Usage: scripts/lab.sh            serve until Ctrl-C
#        scripts/lab.sh --once     show everything, then stop (used by tests and CI)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
once=0
[ "${1:-}" = "--once" ] && once=1

scripts/install-deps.sh >/dev/null
export PATH="$root/.tools/bin:$PATH"

echo "lab: building"
cargo build -q --locked -p kube-emulator --bin kube-emulator

state=$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-lab.XXXXXX")
kubeconfig="$state/kubeconfig"
emu_pid=""
cleanup() {
  if [ -n "$emu_pid" ]; then
    kill -TERM "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$root/target/debug/kube-emulator" --listen 127.0.0.1:0 --kubeconfig-out "$kubeconfig" \
  --crds "$root/charts/ferrolb/crds" >"$state/emulator.log" 2>&1 &
emu_pid=$!

# The emulator prints its address once it is serving; wait for that (or for it to die).
deadline=$((SECONDS + 30))
until grep -q '^listening on ' "$state/emulator.log" 2>/dev/null; do
  if ! kill -0 "$emu_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    echo "lab: the emulator did not start:" >&2
    cat "$state/emulator.log" >&2
    exit 1
  fi
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$state/emulator.log" | head -n 1)

k() { kubectl --kubeconfig "$kubeconfig" --cache-dir "$state/kube-cache" "$@"; }
echo "lab: emulated cluster at $addr"
# `kubectl create` sends protobuf for built-in kinds, which the emulator does not speak
# (docs/emulator.md); server-side apply sends JSON.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ferrolb-system\n' | k apply --server-side -f - >/dev/null
k apply --server-side -n ferrolb-system -f "$root/charts/ferrolb/examples/"
echo
k get ipaddresspools,bgppeers,bgpadvertisements -n ferrolb-system
echo
cat <<MSG
Point kubectl at the lab:
  export KUBECONFIG=$kubeconfig
  kubectl get ipaddresspools -A
MSG
if [ "$once" = 1 ]; then
  exit 0
fi
echo "lab: serving until Ctrl-C"
wait "$emu_pid"
