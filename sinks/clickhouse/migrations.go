package clickhouse

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// Capabilities are the ClickHouse features that the DDL may use beyond the
// portable base that ClickHouse 18.16 accepts.
type Capabilities struct {
	LowCardinality bool // LowCardinality(String) for dimension columns
	Codecs         bool // CODEC(...) on wide columns
	TTL            bool // table TTL for the raw events table
}

// CapabilitiesFor derives the capabilities from `SELECT version()`, e.g.
// "18.16.1" (none) or "24.8.4.13" (all).
func CapabilitiesFor(version string) Capabilities {
	major, minor := parseVersion(version)
	modern := major > 20 || (major == 20 && minor >= 3)
	return Capabilities{LowCardinality: modern, Codecs: modern, TTL: modern}
}

func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) > 0 {
		major, _ = strconv.Atoi(parts[0])
	}
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// Migration is one numbered, idempotent schema step.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// Table and view names that other packages and analysts rely on.
const (
	TableMigrations = "aivis_schema_migrations"
	TableEvents     = "usage_events"
	TableWindows    = "cost_windows"
	TableAnomalies  = "cost_anomalies"
	ViewEvents      = "usage_events_final"
	ViewWindows     = "cost_by_window"
	// TableBudgetStatus holds the newest evaluation of each budget and
	// period; ViewBudgetStatus reads it with FINAL.
	TableBudgetStatus = "budget_status"
	ViewBudgetStatus  = "budget_status_final"
	// TableGPUSettings holds the constants of the GPU views (SettingEnergy,
	// SettingGridIntensity); ViewGPUCost and ViewSelfHostedCost read usage_events.
	TableGPUSettings   = "gpu_settings"
	ViewGPUCost        = "gpu_cost_by_window"
	ViewSelfHostedCost = "self_hosted_cost_by_day"
	// TableGovernanceSignals holds every change of a governance or
	// security incident, TableAuthFailures ingest's auth-failure counts;
	// the views read them and the events' data movement and attribution.
	TableGovernanceSignals  = "governance_signals"
	TableAuthFailures       = "auth_failures"
	ViewGovernanceIncidents = "governance_incidents"
	ViewAuthFailures        = "auth_failures_by_hour"
	ViewDataMovement        = "data_movement_by_hour"
	ViewCostByEndUser       = "cost_by_end_user"
	ViewCostByTag           = "cost_by_tag"
	// The savings views (package savings): one per recommendation kind,
	// the usage each kind's recommendations are computed from.
	ViewSavingsCaching     = "savings_caching_requests"
	ViewSavingsTier        = "savings_tier_requests"
	ViewSavingsModel       = "savings_model_requests"
	ViewSavingsProvisioned = "savings_hourly_usage"
	ViewSavingsGPU         = "savings_gpu_usage"
	// TableSavings holds each day's recommendations; ViewSavings reads it
	// with FINAL.
	TableSavings = "savings_recommendations"
	ViewSavings  = "savings_recommendations_final"
	// TableKeySightings summarizes, per day, API key, source and provider
	// region, when the key was first and last used there; ViewKeySightings
	// (a materialized view) feeds it from every insert into usage_events,
	// so that the governance evaluator's first-seen and dormant signals
	// read it instead of weeks of events.
	TableKeySightings = "api_key_sightings"
	ViewKeySightings  = "api_key_sightings_mv"
)

// Names of the gpu_settings rows (Store.WriteGPUSettings).
const (
	// SettingEnergy is the energy price, USD per kWh, of energy_cost_usd.
	SettingEnergy = "energy_usd_per_kwh"
	// SettingGridIntensity is the grid's gCO2 per kWh, of emissions_gco2.
	SettingGridIntensity = "grid_gco2_per_kwh"
)

// LabelDeployment names the serving deployment of an llm.request event
// (set by package serving) and of the gpu.usage events of its GPUs: the
// self-hosted view joins the two on it.
const LabelDeployment = "deployment"

// MigrationsTableDDL creates the table that records applied migrations.
const MigrationsTableDDL = `CREATE TABLE IF NOT EXISTS ` + TableMigrations + ` (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree() ORDER BY version`

// Migrations returns the schema steps for a server with the given capabilities.
func Migrations(c Capabilities) ([]Migration, error) {
	out := make([]Migration, 0, len(migrationTemplates))
	for _, m := range migrationTemplates {
		mig := Migration{Version: m.version, Name: m.name}
		for _, s := range m.statements {
			t, err := template.New(m.name).Funcs(template.FuncMap{
				"dim": func() string {
					if c.LowCardinality {
						return "LowCardinality(String)"
					}
					return "String"
				},
				"codec": func(codec string) string {
					if c.Codecs {
						return " CODEC(" + codec + ")"
					}
					return ""
				},
				"ttl": func(expr string) string {
					if c.TTL {
						return "TTL " + expr
					}
					return ""
				},
			}).Parse(s)
			if err != nil {
				return nil, fmt.Errorf("parsing migration %d %s: %w", m.version, m.name, err)
			}
			var b bytes.Buffer
			if err := t.Execute(&b, nil); err != nil {
				return nil, fmt.Errorf("rendering migration %d %s: %w", m.version, m.name, err)
			}
			mig.Statements = append(mig.Statements, b.String())
		}
		out = append(out, mig)
	}
	return out, nil
}

type migrationTemplate struct {
	version    int
	name       string
	statements []string
}

// latencyQuantile renders the SQL that estimates a latency quantile from the
// merged histogram h: the geometric middle of the bucket holding quantile q.
func latencyQuantile(q string) string {
	return `if(arraySum(h) = 0, 0, round(pow(2, (arrayFirstIndex(x -> x >= ` + q + ` * arraySum(h), arrayCumSum(h)) - 1.5) / 4), 1))`
}

var migrationTemplates = []migrationTemplate{
	{1, "usage_events", []string{`CREATE TABLE IF NOT EXISTS ` + TableEvents + ` (
    event_id String,
    time DateTime,
    date Date,
    kind {{dim}},
    source {{dim}},
    provider {{dim}},
    model {{dim}},
    operation {{dim}},
    status {{dim}},
    error_type String,
    latency_ms Int64,
    service_tier {{dim}},
    team {{dim}},
    project {{dim}},
    cost_center {{dim}},
    api_key_id String,
    input_tokens Int64,
    cache_read_input_tokens Int64,
    cache_write_input_tokens Int64,
    output_tokens Int64,
    reasoning_output_tokens Int64,
    cost_usd Decimal(38, 12),
    cost_source {{dim}},
    catalog_version {{dim}},
    price_id String,
    unpriced UInt8,
    unowned UInt8,
    labels String,
    raw_usage String{{codec "ZSTD(3)"}},
    src_partition UInt32,
    src_offset Int64,
    rating_version UInt64
) ENGINE = ReplacingMergeTree(rating_version)
PARTITION BY toYYYYMM(date)
ORDER BY (date, team, model, event_id)
{{ttl "date + INTERVAL 400 DAY"}}`}},
	{2, "cost_windows", []string{`CREATE TABLE IF NOT EXISTS ` + TableWindows + ` (
    window_start DateTime,
    window_seconds UInt32,
    provider {{dim}},
    model {{dim}},
    team {{dim}},
    project {{dim}},
    src_partition UInt32,
    through_offset Int64,
    requests UInt64,
    errors UInt64,
    unpriced_requests UInt64,
    input_tokens Int64,
    cache_read_input_tokens Int64,
    cache_write_input_tokens Int64,
    output_tokens Int64,
    reasoning_output_tokens Int64,
    cost_usd Decimal(38, 12),
    latency_count UInt64,
    latency_sum_ms Int64,
    latency_hist Array(UInt64),
    emitted_at DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, provider, model, team, project, src_partition, through_offset)`}},
	{3, "cost_anomalies", []string{`CREATE TABLE IF NOT EXISTS ` + TableAnomalies + ` (
    window_start DateTime,
    team {{dim}},
    model {{dim}},
    cost_usd Decimal(38, 12),
    baseline_usd Float64,
    stddev_usd Float64,
    z_score Float64,
    observations UInt32,
    is_anomaly UInt8,
    ewma_mean Float64,
    ewma_var Float64,
    scored_at DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, team, model)`}},
	{4, "views", []string{
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
		`CREATE VIEW IF NOT EXISTS ` + ViewWindows + ` AS
SELECT
    window_start, window_seconds, provider, model, team, project,
    requests, errors, unpriced_requests,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens,
    cost_usd, latency_count,
    if(latency_count = 0, 0, round(latency_sum / latency_count, 1)) AS latency_avg_ms,
    ` + latencyQuantile("0.5") + ` AS latency_p50_ms,
    ` + latencyQuantile("0.95") + ` AS latency_p95_ms
FROM (
    SELECT
        window_start, any(window_seconds) AS window_seconds, provider, model, team, project,
        sum(requests) AS requests, sum(errors) AS errors, sum(unpriced_requests) AS unpriced_requests,
        sum(input_tokens) AS input_tokens, sum(cache_read_input_tokens) AS cache_read_input_tokens,
        sum(cache_write_input_tokens) AS cache_write_input_tokens, sum(output_tokens) AS output_tokens,
        sum(reasoning_output_tokens) AS reasoning_output_tokens, sum(cost_usd) AS cost_usd,
        sum(latency_count) AS latency_count,
        sum(latency_sum_ms) AS latency_sum,
        sumForEach(latency_hist) AS h
    FROM ` + TableWindows + ` FINAL
    GROUP BY window_start, provider, model, team, project
)`,
		`CREATE VIEW IF NOT EXISTS cost_anomalies_final AS SELECT * FROM ` + TableAnomalies + ` FINAL`,
	}},
	// The whole normalized usage and the provider's own cost, so that
	// re-rating under a new catalog prices every meter the first rating saw.
	// The view is recreated because a view's SELECT * is fixed at creation.
	{5, "usage_events_full_usage", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN usage_json String, ADD COLUMN provider_cost_usd String`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
	// The pricing fallback warnings of each event ("code: detail", codes
	// from pricing.FallbackCodes), so that the report can say per model
	// how much cost was priced exactly and how much by fallback.
	{6, "usage_events_pricing_warnings", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN pricing_warnings Array(String)`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
	// The canonical model (schemas.Enriched.CanonicalModel) of each event
	// beside the name its provider reported: gpt-4o for gpt-4o-2024-08-06,
	// GPT-4o and openai/gpt-4o alike. From this version on, the model
	// column of cost_windows and cost_anomalies holds the canonical model,
	// so windows, reports and anomaly series have one row per model; the
	// reported names stay here for drill-down.
	//
	// The window key is unchanged, (window_start, provider, model, team,
	// project, src_partition, through_offset), because 18.16 cannot change
	// a table's ORDER BY, and the aggregator puts into model the canonical
	// model the enriched record carries, or its reported name when it was
	// enriched before canonical_model existed. Both are fixed in the record,
	// not looked up again, so a replay of any record, from before or after
	// this version, lands on the rows it was first counted in; a catalog
	// reload cannot split a window either. Window rows written before this
	// version keep the reported names they were keyed by and still read
	// correctly (in their own rows: merging them would need rewriting a key
	// column). The DEFAULT gives events stored before this version those
	// same names, so verify and re-rating, which compare events with
	// windows per canonical model, still match them.
	{7, "usage_events_canonical_model", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN canonical_model {{dim}} DEFAULT model AFTER model`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
	// Budget evaluations (package budget): one row per budget and period,
	// the newest evaluation (highest version, its time in nanoseconds)
	// replacing the older ones. exhausts_at is 1970-01-01 when spend is
	// not forecast to reach the amount within the period; alerted lists
	// the thresholds already alerted in the period, so that a restarted
	// evaluator does not alert them again.
	{20, "budget_status", []string{`CREATE TABLE IF NOT EXISTS ` + TableBudgetStatus + ` (
    budget_id String,
    name String,
    scope String,
    period {{dim}},
    timezone {{dim}},
    period_start DateTime,
    period_end DateTime,
    amount_usd Decimal(38, 12),
    soft_usd Decimal(38, 12),
    hard_usd Decimal(38, 12),
    spent_usd Decimal(38, 12),
    forecast_usd Float64,
    forecast_low_usd Float64,
    forecast_high_usd Float64,
    forecast_method {{dim}},
    exhausts_at DateTime,
    state {{dim}},
    alerted Array(String),
    evaluated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(period_start)
ORDER BY (budget_id, period_start)`,
		`CREATE VIEW IF NOT EXISTS ` + ViewBudgetStatus + ` AS SELECT * FROM ` + TableBudgetStatus + ` FINAL`,
	}},
	// The incident lifecycle of the anomaly scorer: the score row of the
	// window in which an incident's alert was published names the incident,
	// the status published and its update number, so that a restarted
	// scorer knows which alerts subscribers already have.
	{30, "cost_anomalies_incidents", []string{
		`ALTER TABLE ` + TableAnomalies + ` ADD COLUMN incident_id String, ADD COLUMN incident_status {{dim}}, ADD COLUMN incident_update UInt32`,
		`DROP TABLE IF EXISTS cost_anomalies_final`,
		`CREATE VIEW IF NOT EXISTS cost_anomalies_final AS SELECT * FROM ` + TableAnomalies + ` FINAL`,
	}},
	// What a gpu.usage event measured, so that GPU cost can be split by
	// GPU model, host and owner and set against busy time and energy.
	// energy_joules is 0 where the GPU reports none.
	{40, "usage_events_gpu", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN gpu_model {{dim}}, ADD COLUMN gpu_host {{dim}}, ADD COLUMN mig_profile {{dim}},
    ADD COLUMN gpu_owner_kind {{dim}}, ADD COLUMN gpu_owner_id String, ADD COLUMN pricing_category {{dim}},
    ADD COLUMN allocated_gpu_seconds Float64, ADD COLUMN busy_gpu_seconds Float64, ADD COLUMN energy_joules Float64`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
	// GPU cost per hour, team, owner, GPU model and host, and self-hosted
	// serving cost per 1M tokens per day and deployment. The energy price
	// and grid intensity are rows of gpu_settings (0 until written), read
	// through an aggregate so that a missing row is 0 on every version.
	// idle_gpu_seconds is allocated time the GPU was not busy;
	// idle_cost_usd is the cost of the rows of owner kind idle (no process
	// held the GPU).
	{41, "gpu_views", []string{
		`CREATE TABLE IF NOT EXISTS ` + TableGPUSettings + ` (
    name String,
    value Float64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY name`,
		`CREATE VIEW IF NOT EXISTS ` + ViewGPUCost + ` AS
SELECT
    window_start, window_seconds, team, project, owner_kind, owner_id, gpu_model, host,
    allocated_gpu_seconds, busy_gpu_seconds, allocated_gpu_seconds - busy_gpu_seconds AS idle_gpu_seconds,
    energy_kwh, energy_kwh * energy_usd_per_kwh AS energy_cost_usd, energy_kwh * grid_gco2_per_kwh AS emissions_gco2,
    cost_usd, if(owner_kind = 'idle', cost_usd, toDecimal128(0, 12)) AS idle_cost_usd,
    if(allocated_gpu_seconds = 0, 0, busy_gpu_seconds / allocated_gpu_seconds) AS efficiency,
    events, unpriced_events
FROM (
    SELECT
        toStartOfHour(time) AS window_start, toUInt32(3600) AS window_seconds, team, project,
        gpu_owner_kind AS owner_kind, gpu_owner_id AS owner_id, gpu_model, gpu_host AS host,
        sum(allocated_gpu_seconds) AS allocated_gpu_seconds, sum(busy_gpu_seconds) AS busy_gpu_seconds,
        sum(energy_joules) / 3600000 AS energy_kwh, sum(cost_usd) AS cost_usd,
        count() AS events, sum(unpriced) AS unpriced_events
    FROM ` + TableEvents + ` FINAL
    WHERE kind = 'gpu.usage'
    GROUP BY window_start, team, project, owner_kind, owner_id, gpu_model, host
) AS g CROSS JOIN (
    SELECT anyIf(value, name = '` + SettingEnergy + `') AS energy_usd_per_kwh,
        anyIf(value, name = '` + SettingGridIntensity + `') AS grid_gco2_per_kwh
    FROM ` + TableGPUSettings + ` FINAL
) AS settings`,
		selfHostedView("count()"),
	}},
	// The requests of a serving deployment are the requests its server
	// counted (raw_usage.requests of each serving.interval event, which
	// sums an interval), not the number of events; other llm.request
	// events with the deployment label count one each.
	{42, "self_hosted_requests", []string{
		`DROP TABLE IF EXISTS ` + ViewSelfHostedCost,
		selfHostedView(`sum(if(operation = '` + OperationServingInterval + `', visitParamExtractUInt(raw_usage, 'requests'), toUInt64(1)))`),
	}},
	// Attribution depth and data movement (package governance): the end
	// user, tags, request and response bytes and provider region and
	// endpoint of each event, and enrich's policy flags. 0 bytes means
	// not reported.
	{50, "usage_events_governance", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN end_user String, ADD COLUMN tags Array(String),
    ADD COLUMN request_bytes Int64, ADD COLUMN response_bytes Int64,
    ADD COLUMN provider_region {{dim}}, ADD COLUMN provider_endpoint {{dim}},
    ADD COLUMN unapproved UInt8, ADD COLUMN region_not_allowed UInt8, ADD COLUMN missing_labels UInt8`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
	// Governance and security incidents: one row per change (firing,
	// updated, resolved) of an incident, keyed by incident and update so
	// that a rewrite collapses onto the first; and the rejected producer
	// authentications ingest counted per source address and minute, one
	// row per ingest node, a redelivered count replacing the first.
	{51, "governance_signals", []string{`CREATE TABLE IF NOT EXISTS ` + TableGovernanceSignals + ` (
    signal {{dim}},
    category {{dim}},
    subject String,
    incident_id String,
    status {{dim}},
    update UInt32,
    window_start DateTime,
    window_end DateTime,
    team {{dim}},
    provider {{dim}},
    model {{dim}},
    region {{dim}},
    api_key_id String,
    source {{dim}},
    source_address String,
    cost_usd Decimal(38, 12),
    events UInt64,
    bytes Int64,
    value Float64,
    threshold Float64,
    detail String,
    detected_at DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(detected_at)
ORDER BY (incident_id, update)`,
		`CREATE TABLE IF NOT EXISTS ` + TableAuthFailures + ` (
    minute DateTime,
    source_address String,
    node String,
    failures Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, source_address, node)`,
	}},
	// Views over the signals and the data movement and attribution
	// columns: the newest state of every incident, auth failures per hour
	// and address, data volume per hour, provider, region and team (with
	// the part that left the allowed regions), and spend per end user and
	// per tag.
	{52, "governance_views", []string{
		`CREATE VIEW IF NOT EXISTS ` + ViewGovernanceIncidents + ` AS
SELECT incident_id, any(signal) AS signal, any(category) AS category, any(subject) AS subject,
    argMax(row_status, update) AS status, max(update) AS updates,
    min(detected_at) AS opened_at, max(detected_at) AS changed_at,
    any(team) AS team, any(provider) AS provider, any(model) AS model, any(region) AS region,
    any(api_key_id) AS api_key_id, any(source) AS source, any(source_address) AS source_address,
    max(cost_usd) AS cost_usd, max(events) AS events, max(bytes) AS bytes,
    argMaxIf(detail, update, row_status != 'resolved') AS detail
FROM (
    SELECT incident_id, signal, category, subject, status AS row_status, update, detected_at,
        team, provider, model, region, api_key_id, source, source_address, cost_usd, events, bytes, detail
    FROM ` + TableGovernanceSignals + ` FINAL
)
GROUP BY incident_id`,
		`CREATE VIEW IF NOT EXISTS ` + ViewAuthFailures + ` AS
SELECT hour, source_address, sum(n) AS failures, max(n) AS max_per_minute
FROM (
    SELECT toStartOfHour(minute) AS hour, source_address, sum(failures) AS n
    FROM ` + TableAuthFailures + ` FINAL
    GROUP BY hour, minute, source_address
)
GROUP BY hour, source_address`,
		`CREATE VIEW IF NOT EXISTS ` + ViewDataMovement + ` AS
SELECT toStartOfHour(time) AS hour, provider, provider_region, provider_endpoint, team,
    count() AS requests, sum(req) AS request_bytes, sum(resp) AS response_bytes,
    sum(req + resp) AS bytes,
    sumIf(req + resp, outside = 1) AS bytes_outside_allowed_regions,
    sum(outside) AS requests_outside_allowed_regions,
    sum(cost_usd) AS cost_usd
FROM (
    SELECT time, provider, provider_region, provider_endpoint, team, request_bytes AS req, response_bytes AS resp,
        region_not_allowed AS outside, cost_usd
    FROM ` + TableEvents + ` FINAL
    WHERE kind = 'llm.request'
)
GROUP BY hour, provider, provider_region, provider_endpoint, team`,
		`CREATE VIEW IF NOT EXISTS ` + ViewCostByEndUser + ` AS
SELECT date, team, end_user, api_key_id, count() AS requests, sum(cost_usd) AS cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'llm.request' AND end_user != ''
GROUP BY date, team, end_user, api_key_id`,
		`CREATE VIEW IF NOT EXISTS ` + ViewCostByTag + ` AS
SELECT date, team, tag, count() AS requests, sum(cost_usd) AS cost_usd
FROM ` + TableEvents + ` FINAL
ARRAY JOIN tags AS tag
WHERE kind = 'llm.request'
GROUP BY date, team, tag`,
	}},
	// The usage each savings recommendation kind is computed from (package
	// savings, docs/savings.md): successful llm.request rows with the
	// columns the kind needs, and gpu.usage rows. Labels stay whole, so
	// that the configured label names (prefix hash, task, the
	// non-interactive rule) are read by the queries, not fixed here.
	{60, "savings_views", []string{
		`CREATE VIEW IF NOT EXISTS ` + ViewSavingsCaching + ` AS
SELECT time, date, team, project, api_key_id, provider, model, canonical_model, service_tier, labels,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens, cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'llm.request' AND status = 'ok' AND unpriced = 0`,
		`CREATE VIEW IF NOT EXISTS ` + ViewSavingsTier + ` AS
SELECT time, date, team, project, api_key_id, provider, model, canonical_model, service_tier, latency_ms, labels,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens, cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'llm.request' AND status = 'ok' AND unpriced = 0`,
		`CREATE VIEW IF NOT EXISTS ` + ViewSavingsModel + ` AS
SELECT time, date, team, project, provider, model, canonical_model, service_tier, labels,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens, cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'llm.request' AND status = 'ok' AND unpriced = 0`,
		`CREATE VIEW IF NOT EXISTS ` + ViewSavingsProvisioned + ` AS
SELECT toStartOfHour(time) AS hour, provider, canonical_model, model, service_tier,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens,
    count() AS requests, sum(cost_usd) AS cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'llm.request' AND status = 'ok' AND unpriced = 0
GROUP BY hour, provider, canonical_model, model, service_tier,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens`,
		`CREATE VIEW IF NOT EXISTS ` + ViewSavingsGPU + ` AS
SELECT time, date, kind, team, project, gpu_host AS host, gpu_model, mig_profile, gpu_owner_kind AS owner_kind, gpu_owner_id AS owner_id,
    visitParamExtractString(labels, '` + LabelDeployment + `') AS deployment,
    allocated_gpu_seconds, busy_gpu_seconds, input_tokens, output_tokens, cost_usd
FROM ` + TableEvents + ` FINAL
WHERE kind = 'gpu.usage' OR (kind = 'llm.request' AND status = 'ok' AND deployment != '')`,
	}},
	// Each day's savings recommendations, one row per (day, id); a
	// recomputation of the same day replaces its rows (by version), so a
	// recommendation is stored and published once per day. published says
	// whether it went to aivis.alerts.v1.
	{61, "savings_recommendations", []string{`CREATE TABLE IF NOT EXISTS ` + TableSavings + ` (
    day Date,
    id String,
    kind {{dim}},
    team {{dim}},
    project String,
    api_key_id String,
    provider {{dim}},
    model {{dim}},
    scope String,
    action String,
    evidence String,
    assumption String,
    current_cost_usd Decimal(38, 12),
    saving_usd Decimal(38, 12),
    monthly_saving_usd Decimal(38, 12),
    range_from DateTime,
    range_until DateTime,
    published UInt8,
    computed_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, id)`,
		`CREATE VIEW IF NOT EXISTS ` + ViewSavings + ` AS SELECT * FROM ` + TableSavings + ` FINAL`,
	}},
	// Where and when each API key was used: one row per day, key, source
	// and provider region with the first and last use as aggregate states
	// (min and max are the same however often a row is counted, so a
	// re-rated event, a replayed insert or a backfill that overlaps the
	// view's own rows changes nothing). The view is created before the
	// backfill, so that no insert falls between the two.
	{85, "api_key_sightings", []string{`CREATE TABLE IF NOT EXISTS ` + TableKeySightings + ` (
    date Date,
    api_key_id String,
    source {{dim}},
    provider_region {{dim}},
    first_seen AggregateFunction(min, DateTime),
    last_seen AggregateFunction(max, DateTime)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(date)
ORDER BY (date, api_key_id, source, provider_region)
{{ttl "date + INTERVAL 400 DAY"}}`,
		`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + ViewKeySightings + ` TO ` + TableKeySightings + ` AS` + keySightingsSelect,
		`INSERT INTO ` + TableKeySightings + ` (date, api_key_id, source, provider_region, first_seen, last_seen)` + keySightingsSelect,
	}},
	// Anomaly baselines are exact amounts, like every other amount: the
	// Float64 baseline and spread become Decimal(38, 12) (the server
	// converts the stored rows), and the recent baseline, which was a
	// Float64 of picodollars, gets a Decimal(38, 12) USD column whose
	// default reads the old one, so rows scored before stay readable.
	// ewma_mean is no longer written (0 in new rows).
	{90, "cost_anomalies_decimal", []string{
		`ALTER TABLE ` + TableAnomalies + ` MODIFY COLUMN baseline_usd Decimal(38, 12), MODIFY COLUMN stddev_usd Decimal(38, 12)`,
		`ALTER TABLE ` + TableAnomalies + ` ADD COLUMN ewma_mean_usd Decimal(38, 12) DEFAULT toDecimal128(ewma_mean / 1000000000000, 12)`,
		`DROP TABLE IF EXISTS cost_anomalies_final`,
		`CREATE VIEW IF NOT EXISTS cost_anomalies_final AS SELECT * FROM ` + TableAnomalies + ` FINAL`,
	}},
	// Budget forecasts are exact amounts too: the evaluator rounds the
	// forecast rest of the period to whole picodollars and adds it to the
	// exact spend, so the Float64 forecast and its interval become
	// Decimal(38, 12) (the server converts the stored rows, cutting each
	// value to whole picodollars). The view selects every column, so it is
	// recreated over the new types.
	{91, "budget_status_forecast_decimal", []string{
		`ALTER TABLE ` + TableBudgetStatus + ` MODIFY COLUMN forecast_usd Decimal(38, 12), MODIFY COLUMN forecast_low_usd Decimal(38, 12), MODIFY COLUMN forecast_high_usd Decimal(38, 12)`,
		`DROP TABLE IF EXISTS ` + ViewBudgetStatus,
		`CREATE VIEW IF NOT EXISTS ` + ViewBudgetStatus + ` AS SELECT * FROM ` + TableBudgetStatus + ` FINAL`,
	}},
	// How many requests an event stands for (request_count, 1 unless it
	// sums an interval of a self-hosted server), so that verify compares
	// cost_by_window's requests with what the events say.
	{100, "usage_events_request_count", []string{
		`ALTER TABLE ` + TableEvents + ` ADD COLUMN request_count UInt32 DEFAULT 1`,
		`DROP TABLE IF EXISTS ` + ViewEvents,
		`CREATE VIEW IF NOT EXISTS ` + ViewEvents + ` AS SELECT * FROM ` + TableEvents + ` FINAL`,
	}},
}

// keySightingsSelect groups llm.request events into api_key_sightings
// rows; the materialized view runs it on every inserted block, and
// migration 85 once over the events stored before it.
const keySightingsSelect = `
SELECT date, api_key_id, source, provider_region, minState(time) AS first_seen, maxState(time) AS last_seen
FROM ` + TableEvents + `
WHERE kind = 'llm.request' AND api_key_id != ''
GROUP BY date, api_key_id, source, provider_region`

// OperationServingInterval is the operation of the events package serving
// emits: each sums an interval of a deployment's traffic.
const OperationServingInterval = "serving.interval"

// selfHostedView renders view self_hosted_cost_by_day with the given
// expression for the requests of a deployment's llm.request events.
func selfHostedView(requests string) string {
	return `CREATE VIEW IF NOT EXISTS ` + ViewSelfHostedCost + ` AS
SELECT
    date, deployment, gpu_cost_usd, allocated_gpu_seconds, busy_gpu_seconds,
    requests, input_tokens, output_tokens, input_tokens + output_tokens AS tokens,
    if(input_tokens + output_tokens = 0, toDecimal128(0, 12),
       gpu_cost_usd * 1000000 / toDecimal128(input_tokens + output_tokens, 0)) AS cost_per_1m_tokens_usd
FROM (
    SELECT date, visitParamExtractString(labels, '` + LabelDeployment + `') AS deployment,
        sum(cost_usd) AS gpu_cost_usd, sum(allocated_gpu_seconds) AS allocated_gpu_seconds,
        sum(busy_gpu_seconds) AS busy_gpu_seconds
    FROM ` + TableEvents + ` FINAL
    WHERE kind = 'gpu.usage' AND deployment != ''
    GROUP BY date, deployment
) AS gpu ALL FULL OUTER JOIN (
    SELECT date, visitParamExtractString(labels, '` + LabelDeployment + `') AS deployment,
        ` + requests + ` AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
    FROM ` + TableEvents + ` FINAL
    WHERE kind = 'llm.request' AND deployment != ''
    GROUP BY date, deployment
) AS served USING (date, deployment)`
}

// RerateSrcPartition is the src_partition of the window rows that carry
// re-rating corrections; no Kafka partition has this number, and ClickHouse
// stores it as 4294967295. Their through_offset is the rating version that
// wrote them.
const RerateSrcPartition int32 = -1
