#!/usr/bin/env bash
# Fetches Chart.js from npm (npm pack) into web/static/vendor/, where the
# web view embeds it, and checks it against the pinned sha256. With `check`
# it only verifies the committed copy against the pin (no network).
#   deploy/scripts/vendor-chartjs.sh fetch|check
# To move to a new version: change version and sha256 below (the sha256 of
# the new package's dist/chart.umd.min.js), run `fetch`, and commit.
set -euo pipefail

version=4.6.1
sha256=87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2

root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$root/web/static/vendor
say() { echo "chart.js: $*"; }

check() {
  local got
  got=$(sha256sum "$dest/chart.umd.min.js" | cut -d' ' -f1)
  if [ "$got" != "$sha256" ]; then
    say "web/static/vendor/chart.umd.min.js has sha256 $got, want $sha256 (chart.js $version): run $0 fetch"
    return 1
  fi
  say "web/static/vendor/chart.umd.min.js is chart.js $version ($sha256)"
}

fetch() {
  command -v npm >/dev/null || { say "npm is missing: apt-get install npm"; return 1; }
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent "chart.js@$version" >/dev/null)
  tar -xzf "$tmp/chart.js-$version.tgz" -C "$tmp" package/dist/chart.umd.min.js package/LICENSE.md
  local got
  got=$(sha256sum "$tmp/package/dist/chart.umd.min.js" | cut -d' ' -f1)
  if [ "$got" != "$sha256" ]; then
    say "npm's chart.js@$version dist/chart.umd.min.js has sha256 $got, want $sha256: not copied"
    return 1
  fi
  mkdir -p "$dest"
  cp "$tmp/package/dist/chart.umd.min.js" "$dest/chart.umd.min.js"
  cp "$tmp/package/LICENSE.md" "$dest/chart.js.LICENSE.md"
  check
}

case "${1:-check}" in
  fetch) fetch ;;
  check) check ;;
  *) echo "usage: $0 fetch|check" >&2; exit 2 ;;
esac
