#!/usr/bin/env bash
# Release build of the static ferrolb binaries (what docker/Dockerfile puts in its FROM-scratch
# images), then proof that they need nothing from an image: each runs --help and --version in
# an empty root holding only itself. Prints sizes and the build time.
#
# glibc with crt-static on the preinstalled x86_64-unknown-linux-gnu target: needs no extra
# rustup target or C toolchain. Output: $CARGO_TARGET_DIR (default target)/x86_64-unknown-linux-gnu/dist/
# (release/ with --fast).
#
# Usage: docker/build-static.sh          the shipping build (the workspace's dist profile)
#        docker/build-static.sh --fast   same static linking, without LTO and with more codegen
#                                        units: a quicker CI build (binaries somewhat larger)
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
triple=x86_64-unknown-linux-gnu
bins=(ferrolb-controller ferrolb-speaker)

# The shipping build uses the `dist` profile (size-optimised, fat LTO); --fast the release
# profile without LTO.
profile=dist
if [ "${1:-}" = "--fast" ]; then
  profile=release
  export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi
start=$(date +%s)
# RUSTFLAGS apply to the target only (build scripts and proc macros stay dynamic) because
# --target is given.
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --profile "$profile" --locked --target "$triple" -p ferrolb-controller -p ferrolb-speaker
echo "build-static: $profile build took $(( $(date +%s) - start )) s"

for b in "${bins[@]}"; do
  bin="$target_dir/$triple/$profile/$b"
  root=$(mktemp -d)
  cp "$bin" "$root/"
  # env -i: the binary gets no environment either; absolute tool paths because env -i also
  # clears PATH.
  if [ "$(id -u)" = 0 ]; then
    run=("$(command -v chroot)" "$root")
  else
    run=("$(command -v unshare)" --user --map-root-user --root "$root")
  fi
  env -i "${run[@]}" "/$b" --help >/dev/null
  version=$(env -i "${run[@]}" "/$b" --version)
  rm -rf "$root"
  printf 'build-static: %-20s %6.1f MiB  %s (runs in an empty root)\n' "$b" \
    "$(awk -v s="$(stat -c %s "$bin")" 'BEGIN { print s / 1048576 }')" "$version"
done
