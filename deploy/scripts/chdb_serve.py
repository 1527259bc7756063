#!/usr/bin/env python3
"""Serves one chDB session (current ClickHouse embedded in Python) over
stdin and stdout, so that Go tests can run aivis's real code against it
(internal/chdbcheck.Conn).

Each stdin line is a JSON object {"sql": ...}; each answer is one stdout
line: {"meta": [{"name", "type"}...], "data": [[...]...]} or
{"error": "..."}. Decimals come as strings, DateTime in UTC. The session
lives in a temporary directory removed at exit (stdin closed).
Run it with the venv that deploy/scripts/chdb.sh up installs.
"""
import json
import os
import sys
import tempfile

os.environ["TZ"] = "UTC"

from chdb import session  # noqa: E402  (TZ must be set first)


def main():
    with tempfile.TemporaryDirectory(prefix="aivis-chdb-") as path:
        s = session.Session(path)
        try:
            s.query("SET output_format_json_quote_decimals = 1")
            s.query("SET output_format_json_quote_64bit_integers = 1")
            s.query("SET session_timezone = 'UTC'")
            for line in sys.stdin:
                if not line.strip():
                    continue
                req = json.loads(line)
                try:
                    res = s.query(req["sql"], "JSONCompact")
                    out = res.bytes().decode() if res is not None else ""
                    if out.strip():
                        d = json.loads(out)
                        resp = {"meta": d["meta"], "data": d["data"]}
                    else:
                        resp = {"meta": [], "data": []}
                except Exception as e:  # chdb raises its own error types
                    resp = {"error": str(e)}
                sys.stdout.write(json.dumps(resp) + "\n")
                sys.stdout.flush()
        finally:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
