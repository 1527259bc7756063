#!/usr/bin/env bash
# gpu-check: run gpuprobe against this host's real GPUs for DURATION seconds,
# printing gpu.usage events as JSON lines, then a summary per device. See
# docs/gpu.md. Needs the NVIDIA driver; optional load: set GPU_LOAD to a
# command that keeps a GPU busy (nothing is downloaded).
set -euo pipefail
BIN=${BIN:-bin/aivis}
DURATION=${DURATION:-60}
OUT=${OUT:-$(mktemp -t gpu-check.XXXXXX.jsonl)}
nvidia-smi -L || echo "nvidia-smi not found or failed: gpuprobe will say why it is disabled"
readelf -d "$BIN" | grep -q BIND_NOW && { echo "$BIN is linked with BIND_NOW: it dies on hosts without the driver"; exit 1; }
echo "== one snapshot"
"$BIN" gpuprobe --once
LOADPID=
if [ -n "${GPU_LOAD:-}" ]; then
  echo "== load: $GPU_LOAD"
  bash -c "$GPU_LOAD" >/dev/null 2>&1 & LOADPID=$!
fi
echo "== sampling for ${DURATION}s (sample 2s, window 10s) into $OUT"
AIVIS_GPUPROBE__WINDOW=10s timeout --foreground -s TERM "$DURATION" "$BIN" gpuprobe --interval 2s | tee "$OUT" || true
[ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
echo "== summary"
python3 - "$OUT" <<'PY'
import json, sys, collections
dev = collections.defaultdict(lambda: {"windows": {}, "alloc": 0.0, "busy": 0.0, "energy": 0.0, "owners": set()})
for line in open(sys.argv[1]):
    try:
        ev = json.loads(line)
        g = ev["gpu"]
    except (ValueError, KeyError, TypeError):
        continue
    d = dev[g["gpu_uuid"]]
    d["windows"][ev["time"]] = g["interval_seconds"]
    d["alloc"] += g["allocated_gpu_seconds"]
    d["busy"] += g["busy_gpu_seconds"]
    d["energy"] += g.get("energy_joules") or 0
    d["owners"].add(g.get("owner_kind", "") + "/" + g.get("owner_id", ""))
for uuid, d in dev.items():
    interval = sum(d["windows"].values())
    ok = abs(interval - d["alloc"]) < 1e-6
    print(f"{uuid}: {len(d['windows'])} windows, {interval:.3f}s; allocated {d['alloc']:.3f}s ({'adds up' if ok else 'DOES NOT ADD UP'}), "
          f"busy {d['busy']:.3f}s, energy {d['energy']:.1f} J, owners {sorted(d['owners'])}")
if not dev:
    print("no gpu.usage events: see the log above (disabled mode says why)")
PY
