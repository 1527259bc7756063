#!/usr/bin/env python3
"""Runs SQL statements, in order, in one fresh chDB session (current
ClickHouse embedded in Python) and stops at the first one the engine
rejects, printing its name, its text and the engine's error.

    chdb_check.py statements.json

statements.json is a list of {"name": ..., "sql": ..., "want": ...}, as
written by internal/chdbcheck; "want", when present, is the expected result
as TSV lines, compared without regard to their order. Exit status: 0 all ran, 1 a statement failed, 2 usage.
Run it with the venv that deploy/scripts/chdb.sh up installs.
"""
import json
import sys
import tempfile
import time

from chdb import session


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        statements = json.load(f)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aivis-chdb-") as path:
        s = session.Session(path)
        try:
            version = s.query("SELECT version()", "TSV").bytes().decode().strip()
            rows = 0
            for st in statements:
                try:
                    res = s.query(st["sql"], "TSV")
                except Exception as e:  # chdb raises its own error types
                    print(f"ClickHouse {version} rejected {st['name']}:\n{st['sql']}\n--- error:\n{e}")
                    return 1
                out = res.bytes().decode() if res is not None else ""
                rows += out.count("\n")
                want = st.get("want")
                if want is not None and sorted(out.splitlines()) != sorted(want.splitlines()):
                    print(f"ClickHouse {version} answered {st['name']} differently:\n{st['sql']}\n"
                          f"--- got:\n{out}--- want:\n{want}")
                    return 1
        finally:
            s.close()
    print(f"ClickHouse {version}: {len(statements)} statements ran, {rows} result rows, "
          f"{time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
