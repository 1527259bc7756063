package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// maxBackoff caps the wait between two attempts of one insert.
const maxBackoff = 30 * time.Second

// column pairs a column name with its values so that the INSERT's column
// list and the appended data cannot drift apart.
type column struct {
	name string
	data any
}

// Write stores events in TableEvents, then rows in
// TableWindows, and returns nil only when all of them are durable.
// Window rows are the aggregator's commit marker, so they go last; the rows
// of one window_start are always in a single INSERT (one per month, the
// table's partition), so a window is either fully written or not at all.
// Each INSERT is retried with exponential backoff and jitter up to
// MaxRetries times or until ctx ends. Rewriting the same events or rows is
// harmless: both tables are ReplacingMergeTrees keyed so that a replay
// collapses onto the first write.
func (s *Store) Write(ctx context.Context, events []schemas.StoredEvent, rows []schemas.WindowRow) error {
	if len(events) > 0 {
		cols, err := eventColumns(events)
		if err != nil {
			return err
		}
		if err := s.insert(ctx, TableEvents, cols, len(events)); err != nil {
			return err
		}
	}
	if len(rows) == 0 {
		return nil
	}
	emittedAt := time.Now()
	for _, group := range byMonth(rows) {
		cols, err := windowColumns(group, emittedAt)
		if err != nil {
			return err
		}
		if err := s.insert(ctx, TableWindows, cols, len(group)); err != nil {
			return err
		}
	}
	return nil
}

// byMonth splits rows by the UTC month of their window_start, in month
// order, keeping the input order inside each month.
func byMonth(rows []schemas.WindowRow) [][]schemas.WindowRow {
	index := map[int]int{}
	var months []int
	var groups [][]schemas.WindowRow
	for _, r := range rows {
		t := r.WindowStart.UTC()
		m := t.Year()*100 + int(t.Month())
		i, ok := index[m]
		if !ok {
			i = len(groups)
			index[m] = i
			months = append(months, m)
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	if len(groups) == 1 {
		return groups
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return months[order[a]] < months[order[b]] })
	out := make([][]schemas.WindowRow, len(groups))
	for i, g := range order {
		out[i] = groups[g]
	}
	return out
}

func eventColumns(events []schemas.StoredEvent) ([]column, error) {
	n := len(events)
	var (
		ids, kinds, sources, providers, models, operations = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		statuses, errorTypes, tiers, teams, projects       = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		costCenters, keyIDs, costSources, catalogs, prices = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		labels, rawUsage, usageJSON, providerCosts         = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		times, dates                                       = make([]time.Time, n), make([]time.Time, n)
		latencies, offsets                                 = make([]int64, n), make([]int64, n)
		input, cacheRead, cacheWrite, output, reasoning    = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		costs                                              = make([]decimal.Decimal, n)
		unpriced, unowned                                  = make([]uint8, n), make([]uint8, n)
		partitions                                         = make([]uint32, n)
		ratingVersions                                     = make([]uint64, n)
	)
	for i, se := range events {
		e := se.Event
		if e == nil {
			return nil, fmt.Errorf("writing events: event at index %d (partition %d, offset %d) has no payload; this is a bug in the caller", i, se.Partition, se.Offset)
		}
		t := e.Time.UTC()
		ids[i], times[i] = e.EventID, t
		dates[i] = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		kinds[i], sources[i] = e.Kind, e.Source
		providers[i], models[i], operations[i] = e.Provider, e.Model, e.Operation
		statuses[i], errorTypes[i], tiers[i] = e.Status, e.ErrorType, e.ServiceTier
		latencies[i] = schemas.Get(e.LatencyMs)
		teams[i], projects[i], costCenters[i] = e.Owner.Team, e.Owner.Project, e.Owner.CostCenter
		keyIDs[i] = e.APIKeyID
		if u := e.Usage; u != nil {
			input[i] = schemas.Get(u.InputTokens)
			cacheRead[i] = schemas.Get(u.CacheReadInputTokens)
			cacheWrite[i] = schemas.Get(u.CacheWriteInputTokens)
			output[i] = schemas.Get(u.OutputTokens)
			reasoning[i] = schemas.Get(u.ReasoningOutputTokens)
		}
		costs[i] = picosToUSD(e.CostPicos)
		costSources[i], catalogs[i], prices[i] = e.CostSource, e.Pricing.CatalogVersion, e.Pricing.PriceID
		unpriced[i], unowned[i] = flag(e.Flags.Unpriced), flag(e.Flags.Unowned)
		labels[i] = labelsJSON(e.Labels)
		rawUsage[i] = string(e.RawUsage)
		partitions[i], offsets[i] = uint32(se.Partition), se.Offset
		ratingVersions[i] = se.RatingVersion
		providerCosts[i] = e.ProviderCostUSD
		if e.Usage != nil {
			b, err := json.Marshal(e.Usage)
			if err != nil {
				return nil, fmt.Errorf("writing events: encoding the usage of %s: %w", e.EventID, err)
			}
			usageJSON[i] = string(b)
		}
	}
	return []column{
		{"event_id", ids}, {"time", times}, {"date", dates},
		{"kind", kinds}, {"source", sources}, {"provider", providers}, {"model", models},
		{"operation", operations}, {"status", statuses}, {"error_type", errorTypes},
		{"latency_ms", latencies}, {"service_tier", tiers},
		{"team", teams}, {"project", projects}, {"cost_center", costCenters}, {"api_key_id", keyIDs},
		{"input_tokens", input}, {"cache_read_input_tokens", cacheRead}, {"cache_write_input_tokens", cacheWrite},
		{"output_tokens", output}, {"reasoning_output_tokens", reasoning},
		{"cost_usd", costs}, {"cost_source", costSources}, {"catalog_version", catalogs}, {"price_id", prices},
		{"unpriced", unpriced}, {"unowned", unowned}, {"labels", labels}, {"raw_usage", rawUsage},
		{"src_partition", partitions}, {"src_offset", offsets}, {"rating_version", ratingVersions},
		{"usage_json", usageJSON}, {"provider_cost_usd", providerCosts},
		{"pricing_warnings", pricingWarnings(events)},
	}, nil
}

func windowColumns(rows []schemas.WindowRow, emittedAt time.Time) ([]column, error) {
	n := len(rows)
	var (
		starts                                          = make([]time.Time, n)
		seconds, partitions                             = make([]uint32, n), make([]uint32, n)
		providers, models, teams, projects              = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		through, latencySum                             = make([]int64, n), make([]int64, n)
		requests, errs, unpriced, latencyCount          = make([]uint64, n), make([]uint64, n), make([]uint64, n), make([]uint64, n)
		input, cacheRead, cacheWrite, output, reasoning = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		costs                                           = make([]decimal.Decimal, n)
		hists                                           = make([][]uint64, n)
		emitted                                         = make([]time.Time, n)
	)
	for i, r := range rows {
		starts[i], seconds[i] = r.WindowStart.UTC(), r.WindowSeconds
		providers[i], models[i], teams[i], projects[i] = r.Provider, r.Model, r.Team, r.Project
		partitions[i], through[i] = uint32(r.SrcPartition), r.ThroughOffset
		requests[i], errs[i], unpriced[i] = r.Requests, r.Errors, r.UnpricedRequests
		input[i], cacheRead[i], cacheWrite[i] = r.InputTokens, r.CacheReadInputTokens, r.CacheWriteInputTokens
		output[i], reasoning[i] = r.OutputTokens, r.ReasoningOutputTokens
		cost, err := sumToUSD(r.CostPicos)
		if err != nil {
			return nil, fmt.Errorf("writing window rows: the cost of window %s %s/%s of team %s: %w",
				r.WindowStart.UTC().Format(time.RFC3339), r.Provider, r.Model, r.Team, err)
		}
		costs[i] = cost
		latencyCount[i], latencySum[i] = r.LatencyCount, r.LatencySumMs
		hists[i] = r.LatencyHist
		if hists[i] == nil {
			hists[i] = []uint64{}
		}
		emitted[i] = emittedAt
	}
	return []column{
		{"window_start", starts}, {"window_seconds", seconds},
		{"provider", providers}, {"model", models}, {"team", teams}, {"project", projects},
		{"src_partition", partitions}, {"through_offset", through},
		{"requests", requests}, {"errors", errs}, {"unpriced_requests", unpriced},
		{"input_tokens", input}, {"cache_read_input_tokens", cacheRead}, {"cache_write_input_tokens", cacheWrite},
		{"output_tokens", output}, {"reasoning_output_tokens", reasoning},
		{"cost_usd", costs}, {"latency_count", latencyCount}, {"latency_sum_ms", latencySum},
		{"latency_hist", hists}, {"emitted_at", emitted},
	}, nil
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func labelsJSON(labels map[string]string) string {
	if len(labels) == 0 {
		return "{}"
	}
	b, err := json.Marshal(labels) // sorted keys: replays write identical rows
	if err != nil {
		return "{}" // unreachable for map[string]string
	}
	return string(b)
}

// insert writes one INSERT, retrying transient failures. The driver marks a
// batch sent even when sending fails, so every attempt builds a new batch
// from the same columns.
func (s *Store) insert(ctx context.Context, table string, cols []column, n int) error {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	query := "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")"

	start := time.Now()
	var err error
	attempts := 0
	for {
		attempts++
		if err = s.send(ctx, query, cols); err == nil {
			break
		}
		if attempts > s.cfg.MaxRetries || !retryable(ctx, err) {
			break
		}
		wait := backoff(s.cfg.RetryBackoff, attempts)
		s.log.Warn("insert failed, retrying", "table", table, "rows", n, "attempt", attempts, "wait", wait, "err", err)
		s.metrics.writeRetries.WithLabelValues(table).Inc()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			err = fmt.Errorf("%w (while waiting to retry after: %v)", ctx.Err(), err)
		case <-timer.C:
			continue
		}
		break
	}
	s.metrics.writeSeconds.WithLabelValues(table).Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.writeErrors.WithLabelValues(table).Inc()
		return fmt.Errorf("writing %d rows to %s on %s after %d attempt(s): %w (check that ClickHouse is reachable and `aivis migrate` has run; offsets stay uncommitted, so nothing is lost)",
			n, table, s.cfg.Addr, attempts, err)
	}
	s.metrics.batchRows.WithLabelValues(table).Observe(float64(n))
	return nil
}

// errAppend marks client-side conversion errors, which no retry can fix.
var errAppend = errors.New("appending column")

func (s *Store) send(ctx context.Context, query string, cols []column) error {
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", query[:strings.IndexByte(query, '(')-1], err)
	}
	defer batch.Close()
	for i, c := range cols {
		if err := batch.Column(i).Append(c.data); err != nil {
			return fmt.Errorf("%w %s: %w", errAppend, c.name, err)
		}
	}
	return batch.Send()
}

// permanentCodes are server errors that a retry cannot fix.
var permanentCodes = map[int32]bool{
	16:  true, // NO_SUCH_COLUMN_IN_TABLE
	47:  true, // UNKNOWN_IDENTIFIER
	53:  true, // TYPE_MISMATCH
	60:  true, // UNKNOWN_TABLE
	62:  true, // SYNTAX_ERROR
	81:  true, // UNKNOWN_DATABASE
	192: true, // UNKNOWN_USER
	193: true, // WRONG_PASSWORD
	497: true, // ACCESS_DENIED
	516: true, // AUTHENTICATION_FAILED
}

func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errAppend) {
		return false
	}
	var ex *ch.Exception
	if errors.As(err, &ex) && permanentCodes[ex.Code] {
		return false
	}
	return true
}

// backoff returns the wait before retry number attempt (1-based): base
// doubled per attempt, capped, with "equal jitter" so replicas that failed
// together do not retry together.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(half+1)
}
