#!/usr/bin/env bash
# Sets up (packages, build) and runs the demo pipeline on the default
# SQLite cache: source-faker -> cache -> Lua validation -> summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/luabyte examples/quickstart.lua "$@"
