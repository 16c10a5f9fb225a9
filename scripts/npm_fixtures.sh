#!/usr/bin/env bash
# Installs the npm connector fixtures (tests/fixtures/faros/package.json,
# pinned by its package-lock.json) into tests/fixtures/faros/node_modules:
#   airbyte-faros-destination  (a real Airbyte destination, dry-run mode offline)
#   faros-airbyte-cdk          (the kit tests/fixtures/faros/source-tiny is built on)
#
#   scripts/npm_fixtures.sh           install unless already installed
#   scripts/npm_fixtures.sh --force   reinstall
#
# Exit codes: 0 installed (or already installed), 3 cannot install here
# (npm registry unreachable and the npm cache cannot serve the install, or
# node/npm missing) -- tests report a skip, 1 any other failure.
# The registry and cache are npm's usual ones (npm_config_registry,
# npm_config_cache, ~/.npmrc).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DIR=tests/fixtures/faros
NM="$DIR/node_modules"
STAMP="$NM/.luabyte-npm-fixtures.stamp"
PKGS=(airbyte-faros-destination faros-airbyte-cdk faros-airbyte-cdk-0.23)

say() { echo "npm_fixtures: $*"; }
skip() { say "SKIP: $*"; exit 3; }
fail() { say "FAILED: $*"; exit 1; }

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
if [ ! -f "$DIR/package.json" ] || [ ! -f "$DIR/package-lock.json" ]; then
  fail "$DIR/package.json or package-lock.json is missing"
fi

want_stamp() {
  { node --version; cat "$DIR/package.json" "$DIR/package-lock.json"; } | cksum | cut -d' ' -f1
}
installed() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] || return 1
  for p in "${PKGS[@]}"; do [ -f "$NM/$p/package.json" ] || return 1; done
}
versions() {
  local out="" p v
  for p in "${PKGS[@]}"; do
    v=$(node -p "require('./$NM/$p/package.json').version" 2>/dev/null) || v="?"
    out="$out $p@$v"
  done
  echo "${out# }"
}

if [ "${1:-}" != "--force" ] && installed; then
  say "already installed: $(versions) in $NM"
  exit 0
fi

LOG=$(mktemp "${TMPDIR:-/tmp}/npm_fixtures.XXXXXX.log")
trap 'rm -f "$LOG"' EXIT
NPM_FLAGS=(--prefix "$DIR" --omit=dev --ignore-scripts --no-audit --no-fund
           --no-update-notifier --loglevel=error)
run_ci() { # extra npm flags...
  rm -f "$STAMP"
  local to=()
  command -v timeout >/dev/null 2>&1 && to=(timeout 900)
  "${to[@]}" npm ci "${NPM_FLAGS[@]}" "$@" >"$LOG" 2>&1
}
network_error() {
  grep -Eq 'ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|ECONNABORTED|ESOCKETTIMEDOUT|network (request|connectivity)|socket hang up|request to .* failed' "$LOG"
}
first_error() { # "code X: first message line"
  local code msg
  code=$(grep -Eo '^npm (ERR!|error) code [A-Z_0-9]+' "$LOG" | head -1 | awk '{print $NF}')
  msg=$(grep -E '^npm (ERR!|error) ' "$LOG" |
    grep -Ev 'A complete log|^npm (ERR!|error) (code|errno|syscall) |^npm (ERR!|error) *$' |
    head -1 | sed -E 's/^npm (ERR!|error) *//' | cut -c1-200)
  echo "${code:+$code: }${msg}"
}

start=$(date +%s)
if npm ping --fetch-retries=0 --fetch-timeout=20000 --no-update-notifier >"$LOG" 2>&1; then
  # Registry reachable: use the cache where it can, the registry for the rest.
  if ! run_ci --prefer-offline --fetch-retries=2; then
    if network_error; then skip "npm registry unreachable during install ($(first_error))"; fi
    tail -n 20 "$LOG" >&2
    fail "npm ci failed: $(first_error)"
  fi
else
  reason=$(first_error)
  # No registry: an install served entirely from the npm cache still works.
  if ! run_ci --offline; then
    skip "npm registry unreachable (npm ping: ${reason:-failed}) and the npm cache cannot serve the install"
  fi
fi

for p in "${PKGS[@]}"; do
  [ -f "$NM/$p/package.json" ] || fail "npm ci succeeded but $NM/$p is missing"
done
want_stamp >"$STAMP"
say "installed $(versions) in $NM ($(($(date +%s) - start))s, $(du -sh "$NM" 2>/dev/null | cut -f1))"
