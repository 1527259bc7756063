#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus and promtool) for the alert-rule
# tests: promtool checks and unit-tests deploy/prometheus/*.yaml, and a real
# Prometheus scrapes a running aivis. Idempotent: returns at once when both
# binaries are there. The package's own service is not started (no systemd
# here; the tests run their own Prometheus on a free port).
#   deploy/scripts/prometheus.sh up|status
# Under CI=true a failed install fails; locally it warns and the tests skip
# with a message that names this script.
set -euo pipefail

say() { echo "prometheus: $*"; }

installed() { command -v prometheus >/dev/null && command -v promtool >/dev/null; }

install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  say "installing Debian's prometheus package with apt (needs root; once) …"
  # policy-rc.d keeps the package's service from starting during install.
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && created=1
  fi
  local rc=0
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || rc=$?
  [ -n "$created" ] && $sudo rm -f "$policy"
  return $rc
}

case "${1:-up}" in
  up)
    if installed; then
      say "$(prometheus --version 2>&1 | head -n1)"
      exit 0
    fi
    if ! install || ! installed; then
      say "could not install Debian's prometheus package"
      [ "${CI:-}" = true ] && exit 1
      exit 0
    fi
    say "installed: $(prometheus --version 2>&1 | head -n1)"
    ;;
  status)
    installed && { prometheus --version 2>&1 | head -n1; exit 0; }
    say "not installed (deploy/scripts/prometheus.sh up)"
    exit 1
    ;;
  *)
    echo "usage: $0 up|status" >&2
    exit 2
    ;;
esac
