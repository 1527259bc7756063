#!/usr/bin/env bash
# Installs chDB (current ClickHouse embedded in Python) into a private venv,
# so that the tests can run the DDL and queries for modern servers without a
# second server. Installs python3-venv with apt when venv is missing.
# Idempotent: returns at once when the pinned version is already there.
#   deploy/scripts/chdb.sh up|status|python
# `python` prints the venv's python path (for AIVISDEV_CHDB_PYTHON).
# Environment: AIVISDEV_CHDB_VENV (default <repo>/.aivis/chdb-venv).
# Under CI=true a failed install fails; locally it warns and the chDB tests
# skip with a message that names this script.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${AIVISDEV_CHDB_VENV:-$root/.aivis/chdb-venv}
# The pinned engine: chdb-core 26.9 embeds ClickHouse 26.9.
pin=chdb-core==26.9.0

say() { echo "chdb: $*"; }

installed() {
  [ -x "$venv/bin/python" ] && [ -f "$venv/.aivis-pin" ] && [ "$(cat "$venv/.aivis-pin")" = "$pin" ] &&
    "$venv/bin/python" -c 'import chdb' >/dev/null 2>&1
}

need_venv() {
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && return
  say "installing python3-venv with apt (needs root) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3-venv >/dev/null
}

install() {
  command -v python3 >/dev/null || { say "python3 is missing: install it (apt-get install python3)"; return 1; }
  need_venv || return 1
  say "installing $pin into $venv (about 180 MB, once) …"
  rm -rf "$venv"
  python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install --disable-pip-version-check -q "$pin" || return 1
  echo "$pin" >"$venv/.aivis-pin"
}

up() {
  if installed; then
    say "$pin ready in $venv"
    return
  fi
  local start=$SECONDS
  if install && installed; then
    say "$pin ready in $venv ($((SECONDS - start)) s)"
    return
  fi
  # CI as the tests read it (Go's strconv.ParseBool).
  if [[ "${CI:-}" =~ ^(1|t|T|true|TRUE|True)$ ]]; then
    say "installing $pin failed"
    exit 1
  fi
  say "installing $pin failed; the chDB tests will skip (rerun: $0 up)"
}

case "${1:-}" in
  up) up ;;
  status) if installed; then say "$pin ready in $venv"; else say "not installed (run: $0 up)"; exit 1; fi ;;
  python) echo "$venv/bin/python" ;;
  *) echo "usage: $0 up|status|python" >&2; exit 2 ;;
esac
