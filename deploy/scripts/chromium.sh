#!/usr/bin/env bash
# Installs Debian's chromium, which the web-view test drives headless, and
# prints its path. Idempotent: returns at once when a Chromium is there.
#   deploy/scripts/chromium.sh up|path
# Environment: AIVISDEV_CHROMIUM (a Chromium or Chrome binary to use instead).
# Under CI=true a failed install fails; locally it warns and the web-view
# test skips with a message that names this script.
set -euo pipefail

say() { echo "chromium: $*" >&2; }

find_chromium() {
  if [ -n "${AIVISDEV_CHROMIUM:-}" ]; then
    [ -x "$AIVISDEV_CHROMIUM" ] && { echo "$AIVISDEV_CHROMIUM"; return; }
    return 1
  fi
  local c
  for c in chromium chromium-browser google-chrome; do
    command -v "$c" && return
  done
  return 1
}

install() {
  find_chromium >/dev/null && return
  command -v apt-get >/dev/null || { say "apt-get is missing: install Chromium yourself and set AIVISDEV_CHROMIUM"; return 1; }
  say "installing chromium with apt (needs root; about 100 MB, once) …"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
}

case "${1:-up}" in
  up)
    if ! install; then
      [ "${CI:-}" = true ] && exit 1
      say "install failed: the web-view test will skip"
      exit 0
    fi
    say "$(find_chromium) ($("$(find_chromium)" --version 2>/dev/null || echo 'version unknown'))"
    ;;
  path) find_chromium ;;
  *) echo "usage: $0 up|path" >&2; exit 2 ;;
esac
