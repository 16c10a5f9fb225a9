#!/usr/bin/env bash
# Installs the Debian packages luabyte needs (when missing) and builds it.
#   scripts/setup.sh            release build in build/
#   scripts/setup.sh --asan     also the AddressSanitizer/UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config liblua5.4-dev lua5.4 lua-cjson-dev lua-cjson
          libuv1-dev libsqlite3-dev libyaml-dev sqlite3 libpq-dev lua-busted python3 python3-jsonschema python3-venv
          lua-luv luarocks
          libcurl4-openssl-dev curl
          postgresql python3-psycopg2)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" 2>&1 | grep -E 'warning|error|Error' || true
test -x build/luabyte || { echo "setup: the build failed" >&2; exit 1; }
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLB_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs" 2>&1 | grep -E 'warning|error|Error' || true
  test -x build-asan/luabyte || { echo "setup: the sanitizer build failed" >&2; exit 1; }
fi
