#!/usr/bin/env bash
# make demo: a private ClickHouse, the whole pipeline in one process on an
# embedded Kafka cluster with about a minute of synthetic traffic (three
# hours of event time) with one staged incident, a simulated GPU host
# (gpu.usage events from mocked NVIDIA GPUs read by gpuprobe, and the token
# events of the vLLM deployment they serve) and the traffic of the savings
# scenarios, then the cost report with its GPU sections, the budget status,
# the alerts raised and the savings recommendations, read back from
# ClickHouse.
# Environment: AIVISDEV_BIN (default bin/aivis), AIVISDEV_DEMO_DB (aivis_demo),
# AIVISDEV_DEMO_RATE (events/s, 300), AIVISDEV_DEMO_DURATION (60s),
# AIVISDEV_DEMO_SCENARIO (spike; see aivis loadgen --help, empty for none;
# governance also turns on the governance evaluator with
# deploy/governance.example.yaml and prints its incidents),
# AIVISDEV_DEMO_BUDGETS (deploy/budgets.example.yaml, empty for none),
# AIVISDEV_DEMO_GPU (1; 0 leaves the simulated GPU host out),
# AIVISDEV_DEMO_SAVINGS (deploy/savings.example.yaml, empty for none),
# AIVISDEV_CH_PORT (9000).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${AIVISDEV_BIN:-$root/bin/aivis}
db=${AIVISDEV_DEMO_DB:-aivis_demo}
scenario=${AIVISDEV_DEMO_SCENARIO-spike}
budgets=${AIVISDEV_DEMO_BUDGETS-$root/deploy/budgets.example.yaml}
savings=${AIVISDEV_DEMO_SAVINGS-$root/deploy/savings.example.yaml}
savings_scenarios=savings_caching,savings_batch,savings_model,savings_provisioned,savings_gpu
ch() { clickhouse-client --port "${AIVISDEV_CH_PORT:-9000}" -d "$db" "$@"; }

interrupted() {
  echo
  echo "demo interrupted: stopping ClickHouse too"
  deploy/scripts/clickhouse.sh down || true
  exit 130
}
trap interrupted INT TERM

deploy/scripts/clickhouse.sh up
# A fresh database each time, so the report shows this run only.
clickhouse-client --port "${AIVISDEV_CH_PORT:-9000}" -q "DROP DATABASE IF EXISTS $db"
gpu_cost=(--gpu_cost.energy_usd_per_kwh 0.12 --gpu_cost.grid_gco2_per_kwh 380)
"$bin" migrate --clickhouse.database "$db" --log_level warn "${gpu_cost[@]}"
gpu=()
if [ "${AIVISDEV_DEMO_GPU:-1}" = 1 ]; then
  gpu=(--gpu --self_hosted.comparables llama-3-8b=openai/gpt-4o-mini)
fi

# The governance scenario's key moves region half-way through three hours
# of event time: a two-hour window sees that as new.
governance=()
if [ "$scenario" = governance ]; then
  governance=(--governance.enabled --governance.path "$root/deploy/governance.example.yaml" --governance.window 2h)
fi

"$bin" dev --clickhouse.database "$db" --log_level warn \
  --rate "${AIVISDEV_DEMO_RATE:-300}" --duration "${AIVISDEV_DEMO_DURATION:-60s}" --time-scale 180 \
  --scenario "$scenario" --budget.path "$budgets" "${gpu_cost[@]}" "${gpu[@]}" "${governance[@]}" \
  ${savings:+--savings-scenario "$savings_scenarios"} \
  --exit --since 4h --limit 8 &
pid=$!
# Ctrl-C reaches aivis too (same process group) and starts its drain: wait
# for it rather than signalling again, which would make it exit at once.
trap 'wait $pid 2>/dev/null; interrupted' INT
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; interrupted' TERM
wait $pid
trap - INT TERM

"$bin" verify --clickhouse.database "$db" --log_level warn --from "$(date -u -d '-1 day' +%F)" --to "$(date -u -d '+1 day' +%F)" || true

if [ -n "$budgets" ]; then
  echo
  echo "Budgets ($budgets):"
  "$bin" report budgets --clickhouse.database "$db" --log_level warn || true
fi

# aivis dev printed the alerts it published (ALERTS RAISED above, read
# from aivis.alerts.v1 before its embedded Kafka cluster went away);
# cost_anomalies keeps the incident marks of the cost anomaly alerts.
echo
echo "Cost anomaly incidents${scenario:+ (staged scenario: $scenario)}:"
ch --format PrettyCompactMonoBlock -q "
  SELECT window_start, team, model, incident_status AS status, round(toFloat64(cost_usd), 2) AS cost_usd,
         round(toFloat64(baseline_usd), 2) AS baseline_usd, round(z_score, 1) AS z, incident_id
  FROM cost_anomalies_final WHERE incident_id != '' ORDER BY window_start LIMIT 20" || true
echo "($(ch -q "SELECT uniqExact(incident_id) FROM cost_anomalies_final WHERE incident_id != ''" 2>/dev/null || echo '?') incidents, $(ch -q "SELECT count() FROM cost_anomalies_final WHERE is_anomaly" 2>/dev/null || echo '?') anomalous windows)"

if [ -n "$savings" ]; then
  echo
  echo "Savings ($savings; staged: $savings_scenarios):"
  "$bin" report savings --clickhouse.database "$db" --log_level warn --since 4h --per-kind 2 --savings.path "$savings" || true
fi

if [ "$scenario" = governance ]; then
  echo
  echo "Governance and security incidents (docs/governance.md):"
  ch --format PrettyCompactMonoBlock -q "
    SELECT category, signal, count() AS incidents, sum(events) AS events,
           round(toFloat64(sum(cost_usd)), 2) AS cost_usd, any(subject) AS for_example
    FROM governance_incidents GROUP BY category, signal ORDER BY category, signal" || true
fi

cat <<MSG

ClickHouse is still running on 127.0.0.1:${AIVISDEV_CH_PORT:-9000} with the demo data in database $db.
Query it yourself, for example cost per model (the row without a model is
gpu.usage, GPU time, which gpu_cost_by_window splits by team and GPU) and
the latest anomalies:
  clickhouse-client -d $db -q "SELECT model, sum(requests) AS requests, sum(cost_usd) AS usd FROM cost_by_window GROUP BY model ORDER BY usd DESC"
  clickhouse-client -d $db -q "SELECT * FROM cost_anomalies_final WHERE is_anomaly ORDER BY window_start DESC LIMIT 10"
See it as charts (cost over time, top teams, projects and models, budget
burn, anomalies) in your browser:
  make serve$([ "$db" = aivis_demo ] || echo " AIVISDEV_DEMO_DB=$db")    # or: bin/aivis serve --clickhouse.database $db
and open http://127.0.0.1:8088/ (Ctrl-C stops it). The same numbers as JSON:
  curl -s 'http://127.0.0.1:8088/api/v1/spend?by=team&since=24h'
Stop ClickHouse with:
  make clickhouse-down
MSG
