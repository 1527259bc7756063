#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (make fuzz).
#
# A target fails the run when it finds an input that breaks it: the fuzzer
# writes that input under testdata/fuzz and the script reruns it as a plain
# test so the failure prints. Go 1.26's fuzzing coordinator can also end a
# duration-bound run with a bare "context deadline exceeded" and no input
# (golang.org/issue/75804, fixed in Go 1.27): that signature, and only that
# one, is run again, up to three attempts in all.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
log=$(mktemp /tmp/aivis-fuzz.XXXXXX)
trap 'rm -f "$log"' EXIT

for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' "$dir"/*_test.go 2>/dev/null | awk '{print $2}'); do
    echo "fuzz $pkg $f ($FUZZTIME)"
    for attempt in 1 2 3; do
      if $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
        break
      fi
      echo "fuzz $f failed (attempt $attempt):"
      grep -v '^fuzz: elapsed' "$log" | tail -n 40
      if [ -n "$(git status --porcelain -- "$dir/testdata/fuzz/$f" 2>/dev/null)" ]; then
        echo "fuzz $f: a failing input was written under $dir/testdata/fuzz/$f; rerunning it:"
        $GO test -run "^$f\$" "$pkg" || true
        exit 1
      fi
      if ! grep -q 'context deadline exceeded' "$log" || [ "$attempt" = 3 ]; then
        exit 1
      fi
      echo "fuzz $f: the fuzzing engine stopped at its deadline without a failing input (golang.org/issue/75804); running it again"
    done
  done
done
