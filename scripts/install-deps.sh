#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, when they are missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libunwind-dev zlib1g-dev libsqlite3-dev libcmocka-dev sqlite3 libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
