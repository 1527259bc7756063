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
name=chdb
venv=${AIVISDEV_CHDB_VENV:-$root/.aivis/chdb-venv}
# The pinned engine: chdb-core 26.9 embeds ClickHouse 26.9.
pin=chdb-core==26.9.0
module=chdb
size="about 180 MB"
skips="the chDB tests"
. "$(dirname "$0")/pyvenv.sh"
pyvenv_main "$@"
