package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

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
// one source partition has of one window_start are always in a single
// INSERT (never spanning months, the table's partition; see
// windowInserts), so a partition's window is either fully written or not
// at all, which is what a restart reads back (Emitted).
// All the events of a call go in one INSERT, sent in blocks of at most
// maxEventsPerBlock rows: the server joins the blocks of an INSERT into one
// part (up to a million rows), and every part costs it a fixed amount of
// work when written and merged, so the fewer the parts the less CPU an
// event costs it (8.5 µs of server CPU an event in parts of 16,384 rows,
// 4.7 µs in parts of 65,536, BenchmarkStoreCost), while the driver
// holds only one block's columns and buffers at a time. Each INSERT is
// retried with exponential backoff and jitter
// up to MaxRetries times or until ctx ends. Rewriting the same events or
// rows is harmless: both tables are ReplacingMergeTrees keyed so that a
// replay collapses onto the first write.
func (s *Store) Write(ctx context.Context, events []schemas.StoredEvent, rows []schemas.WindowRow) error {
	if len(events) > 0 {
		buf := eventBufferPool.Get().(*eventBuffers)
		cols, err := buf.columns(events)
		if err == nil {
			err = s.insert(ctx, TableEvents, cols, len(events), maxEventsPerBlock)
		}
		buf.release()
		if err != nil {
			return err
		}
	}
	if len(rows) == 0 {
		return nil
	}
	emittedAt := time.Now()
	for _, group := range windowInserts(rows) {
		cols, err := windowColumns(rows, group, emittedAt)
		if err != nil {
			return err
		}
		if err := s.insert(ctx, TableWindows, cols, len(group), len(group)); err != nil {
			return err
		}
	}
	return nil
}

// maxWindowRowsPerInsert bounds the rows of one window INSERT, and so the
// memory its columns take (each row carries a histogram of up to 96
// buckets, up to 1.6 KB once in the driver's column): 100,000 keys closing
// at once would otherwise be held twice over. The rows of one partition's
// window_start are never split.
const maxWindowRowsPerInsert = 16_384

// maxEventsPerBlock bounds the rows of one block of an events INSERT. An
// event takes about 1.5 KB in the driver's string columns and as much
// again in its encoded and compressed buffers, which the driver keeps
// for the next block.
var maxEventsPerBlock = 16_384

// windowInserts groups rows into INSERTs: the rows of one (window_start,
// src_partition) always together, groups of one UTC month only (the
// table's partition), in window order, each at most
// maxWindowRowsPerInsert rows unless a single partition's window_start has
// more. The rows of one window_start from different partitions may go in
// different INSERTs, as they do when different replicas own the
// partitions: each partition's rows carry its own through_offset. It
// returns row indices, so that the rows themselves are not copied.
func windowInserts(rows []schemas.WindowRow) [][]int {
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ra, rb := &rows[order[a]], &rows[order[b]]
		if !ra.WindowStart.Equal(rb.WindowStart) {
			return ra.WindowStart.Before(rb.WindowStart)
		}
		return ra.SrcPartition < rb.SrcPartition
	})
	month := func(i int) int {
		t := rows[i].WindowStart.UTC()
		return t.Year()*100 + int(t.Month())
	}
	same := func(a, b int) bool {
		return rows[a].SrcPartition == rows[b].SrcPartition && rows[a].WindowStart.Equal(rows[b].WindowStart)
	}
	var inserts [][]int
	var cur []int
	for lo := 0; lo < len(order); {
		hi := lo + 1
		for hi < len(order) && same(order[hi], order[lo]) {
			hi++
		}
		window := order[lo:hi]
		if len(cur) > 0 && (month(cur[0]) != month(window[0]) || len(cur)+len(window) > maxWindowRowsPerInsert) {
			inserts = append(inserts, cur)
			cur = nil
		}
		cur = append(cur, window...)
		lo = hi
	}
	if len(cur) > 0 {
		inserts = append(inserts, cur)
	}
	return inserts
}

// eventBuffers are the columns of one events INSERT, kept from one Write
// to the next so that a flush of 10,000 events does not allocate and zero
// 34 slices of 10,000 values; the driver copies what it sends.
type eventBuffers struct {
	ids, kinds, sources, providers, models, operations []string
	statuses, errorTypes, tiers, teams, projects       []string
	costCenters, keyIDs, costSources, catalogs, prices []string
	labels, rawUsage, usageJSON, providerCosts         []string
	canonicalModels                                    []string
	gpuModels, gpuHosts, migProfiles, gpuOwnerKinds    []string
	gpuOwnerIDs, pricingCategories                     []string
	endUsers, regions, endpoints                       []string
	tags                                               [][]string
	requestBytes, responseBytes                        []int64
	requestCounts                                      []uint32
	unapproved, regionNotAllowed, missingLabels        []uint8
	allocatedGPU, busyGPU, energyJoules                []float64
	times                                              []time.Time
	latencies, offsets                                 []int64
	input, cacheRead, cacheWrite, output, reasoning    []int64
	costs                                              []decimal.Decimal
	unpriced, unowned                                  []uint8
	partitions                                         []uint32
	ratingVersions                                     []uint64

	text       []byte      // backs the labels' JSON
	labelPairs [][2]string // scratch for sorting labels by key
}

var eventBufferPool = sync.Pool{New: func() any { return new(eventBuffers) }}

func sized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// release drops the references to events so that pooled buffers do not
// keep them alive, and returns b to the pool.
func (b *eventBuffers) release() {
	for _, s := range [][]string{b.ids, b.kinds, b.sources, b.providers, b.models, b.operations,
		b.statuses, b.errorTypes, b.tiers, b.teams, b.projects, b.costCenters, b.keyIDs,
		b.costSources, b.catalogs, b.prices, b.labels, b.rawUsage, b.usageJSON, b.providerCosts, b.canonicalModels,
		b.gpuModels, b.gpuHosts, b.migProfiles, b.gpuOwnerKinds, b.gpuOwnerIDs, b.pricingCategories,
		b.endUsers, b.regions, b.endpoints} {
		clear(s[:cap(s)]) // a Write's first INSERT may have been its longest
	}
	clear(b.tags[:cap(b.tags)])
	clear(b.costs[:cap(b.costs)])
	clear(b.labelPairs[:cap(b.labelPairs)])
	eventBufferPool.Put(b)
}

// columns fills b with events and returns the INSERT's columns, valid until
// b is released.
func (b *eventBuffers) columns(events []schemas.StoredEvent) ([]column, error) {
	n := len(events)
	b.ids, b.kinds, b.sources, b.providers = sized(b.ids, n), sized(b.kinds, n), sized(b.sources, n), sized(b.providers, n)
	b.models, b.operations, b.statuses, b.errorTypes = sized(b.models, n), sized(b.operations, n), sized(b.statuses, n), sized(b.errorTypes, n)
	b.tiers, b.teams, b.projects, b.costCenters = sized(b.tiers, n), sized(b.teams, n), sized(b.projects, n), sized(b.costCenters, n)
	b.keyIDs, b.costSources, b.catalogs, b.prices = sized(b.keyIDs, n), sized(b.costSources, n), sized(b.catalogs, n), sized(b.prices, n)
	b.labels, b.rawUsage, b.usageJSON, b.providerCosts = sized(b.labels, n), sized(b.rawUsage, n), sized(b.usageJSON, n), sized(b.providerCosts, n)
	b.canonicalModels = sized(b.canonicalModels, n)
	b.gpuModels, b.gpuHosts, b.migProfiles = sized(b.gpuModels, n), sized(b.gpuHosts, n), sized(b.migProfiles, n)
	b.gpuOwnerKinds, b.gpuOwnerIDs, b.pricingCategories = sized(b.gpuOwnerKinds, n), sized(b.gpuOwnerIDs, n), sized(b.pricingCategories, n)
	b.allocatedGPU, b.busyGPU, b.energyJoules = sized(b.allocatedGPU, n), sized(b.busyGPU, n), sized(b.energyJoules, n)
	b.times, b.latencies, b.offsets = sized(b.times, n), sized(b.latencies, n), sized(b.offsets, n)
	b.input, b.cacheRead, b.cacheWrite = sized(b.input, n), sized(b.cacheRead, n), sized(b.cacheWrite, n)
	b.output, b.reasoning, b.costs = sized(b.output, n), sized(b.reasoning, n), sized(b.costs, n)
	b.unpriced, b.unowned, b.partitions, b.ratingVersions = sized(b.unpriced, n), sized(b.unowned, n), sized(b.partitions, n), sized(b.ratingVersions, n)
	b.endUsers, b.regions, b.endpoints, b.tags = sized(b.endUsers, n), sized(b.regions, n), sized(b.endpoints, n), sized(b.tags, n)
	b.requestBytes, b.responseBytes = sized(b.requestBytes, n), sized(b.responseBytes, n)
	b.requestCounts = sized(b.requestCounts, n)
	b.unapproved, b.regionNotAllowed, b.missingLabels = sized(b.unapproved, n), sized(b.regionNotAllowed, n), sized(b.missingLabels, n)
	b.text = b.text[:0]
	for i, se := range events {
		e := se.Event
		if e == nil {
			return nil, fmt.Errorf("writing events: event at index %d (partition %d, offset %d) has no payload; this is a bug in the caller", i, se.Partition, se.Offset)
		}
		b.ids[i], b.times[i] = e.EventID, e.Time.UTC()
		b.kinds[i], b.sources[i] = e.Kind, e.Source
		b.providers[i], b.models[i], b.operations[i] = e.Provider, e.Model, e.Operation
		b.canonicalModels[i] = e.ModelID()
		b.statuses[i], b.errorTypes[i], b.tiers[i] = e.Status, e.ErrorType, e.ServiceTier
		b.latencies[i] = schemas.Get(e.LatencyMs)
		b.teams[i], b.projects[i], b.costCenters[i] = e.Owner.Team, e.Owner.Project, e.Owner.CostCenter
		b.keyIDs[i] = e.APIKeyID
		b.usageJSON[i] = ""
		if u := e.Usage; u != nil {
			b.input[i] = schemas.Get(u.InputTokens)
			b.cacheRead[i] = schemas.Get(u.CacheReadInputTokens)
			b.cacheWrite[i] = schemas.Get(u.CacheWriteInputTokens)
			b.output[i] = schemas.Get(u.OutputTokens)
			b.reasoning[i] = schemas.Get(u.ReasoningOutputTokens)
			b.usageJSON[i] = usageJSON(u)
		} else {
			b.input[i], b.cacheRead[i], b.cacheWrite[i], b.output[i], b.reasoning[i] = 0, 0, 0, 0, 0
		}
		b.costs[i] = picosToUSD(e.CostPicos)
		b.costSources[i], b.catalogs[i], b.prices[i] = e.CostSource, e.Pricing.CatalogVersion, e.Pricing.PriceID
		b.unpriced[i], b.unowned[i] = flag(e.Flags.Unpriced), flag(e.Flags.Unowned)
		b.labels[i] = b.labelsJSON(e.Labels)
		// The driver copies the bytes before Write returns, and nothing
		// changes an event's raw usage once decoded.
		b.rawUsage[i] = unsafe.String(unsafe.SliceData(e.RawUsage), len(e.RawUsage))
		b.partitions[i], b.offsets[i] = uint32(se.Partition), se.Offset
		b.ratingVersions[i] = se.RatingVersion
		b.providerCosts[i] = e.ProviderCostUSD
		b.gpuColumns(i, e.GPU)
		b.endUsers[i], b.regions[i], b.endpoints[i] = e.EndUser, e.ProviderRegion, e.ProviderEndpoint
		b.tags[i] = e.Tags
		if b.tags[i] == nil {
			b.tags[i] = []string{}
		}
		b.requestBytes[i], b.responseBytes[i] = schemas.Get(e.RequestBytes), schemas.Get(e.ResponseBytes)
		b.requestCounts[i] = uint32(e.Requests()) // at most schemas.MaxRequestCount
		b.unapproved[i], b.regionNotAllowed[i] = flag(e.Flags.UnapprovedModel), flag(e.Flags.RegionNotAllowed)
		b.missingLabels[i] = flag(e.Flags.MissingLabels)
	}
	all := []column{
		// The driver stores a Date as the day of the time it is given.
		{"event_id", b.ids}, {"time", b.times}, {"date", b.times},
		{"kind", b.kinds}, {"source", b.sources}, {"provider", b.providers}, {"model", b.models},
		{"canonical_model", b.canonicalModels},
		{"operation", b.operations}, {"status", b.statuses}, {"error_type", b.errorTypes},
		{"latency_ms", b.latencies}, {"service_tier", b.tiers},
		{"team", b.teams}, {"project", b.projects}, {"cost_center", b.costCenters}, {"api_key_id", b.keyIDs},
		{"input_tokens", b.input}, {"cache_read_input_tokens", b.cacheRead}, {"cache_write_input_tokens", b.cacheWrite},
		{"output_tokens", b.output}, {"reasoning_output_tokens", b.reasoning},
		{"cost_usd", b.costs}, {"cost_source", b.costSources}, {"catalog_version", b.catalogs}, {"price_id", b.prices},
		{"unpriced", b.unpriced}, {"unowned", b.unowned}, {"labels", b.labels}, {"raw_usage", b.rawUsage},
		{"src_partition", b.partitions}, {"src_offset", b.offsets}, {"rating_version", b.ratingVersions},
		{"usage_json", b.usageJSON}, {"provider_cost_usd", b.providerCosts},
		{"pricing_warnings", pricingWarnings(events)},
		{"gpu_model", b.gpuModels}, {"gpu_host", b.gpuHosts}, {"mig_profile", b.migProfiles},
		{"gpu_owner_kind", b.gpuOwnerKinds}, {"gpu_owner_id", b.gpuOwnerIDs}, {"pricing_category", b.pricingCategories},
		{"allocated_gpu_seconds", b.allocatedGPU}, {"busy_gpu_seconds", b.busyGPU}, {"energy_joules", b.energyJoules},
		{"end_user", b.endUsers}, {"tags", b.tags}, {"request_bytes", b.requestBytes}, {"response_bytes", b.responseBytes},
		{"provider_region", b.regions}, {"provider_endpoint", b.endpoints},
		{"unapproved", b.unapproved}, {"region_not_allowed", b.regionNotAllowed}, {"missing_labels", b.missingLabels},
	}
	// A column that is empty or zero in every event is left out of the
	// INSERT: the server fills in the same value (the one DEFAULT
	// expression, canonical_model's, is model, and canonical_model is
	// empty only where model is), and neither side spends time on it.
	// Optional fields (operation, error_type, cost_center, cache tokens,
	// flags, ...) are often unset in a whole batch.
	cols := all[:3]
	for _, c := range all[3:] {
		if !allZero(c.data) {
			cols = append(cols, c)
		}
	}
	// request_count's DEFAULT is 1, what almost every event stands for.
	if slices.ContainsFunc(b.requestCounts, func(c uint32) bool { return c != 1 }) {
		cols = append(cols, column{"request_count", b.requestCounts})
	}
	return cols, nil
}

// gpuColumns fills row i's gpu.usage columns (zero for other kinds).
func (b *eventBuffers) gpuColumns(i int, g *schemas.GPUUsage) {
	if g == nil {
		b.gpuModels[i], b.gpuHosts[i], b.migProfiles[i] = "", "", ""
		b.gpuOwnerKinds[i], b.gpuOwnerIDs[i], b.pricingCategories[i] = "", "", ""
		b.allocatedGPU[i], b.busyGPU[i], b.energyJoules[i] = 0, 0, 0
		return
	}
	b.gpuModels[i], b.gpuHosts[i], b.migProfiles[i] = g.GPUModel, g.Host, g.MIGProfile
	b.gpuOwnerKinds[i], b.gpuOwnerIDs[i], b.pricingCategories[i] = g.OwnerKind, g.OwnerID, g.PricingCategory
	b.allocatedGPU[i], b.busyGPU[i], b.energyJoules[i] = g.AllocatedSeconds, g.BusySeconds, 0
	if g.EnergyJoules != nil {
		b.energyJoules[i] = *g.EnergyJoules
	}
}

// allZero reports whether every value of a column is its type's zero.
func allZero(data any) bool {
	switch v := data.(type) {
	case []string:
		return !slices.ContainsFunc(v, func(s string) bool { return s != "" })
	case []int64:
		return !slices.ContainsFunc(v, func(x int64) bool { return x != 0 })
	case []uint64:
		return !slices.ContainsFunc(v, func(x uint64) bool { return x != 0 })
	case []uint32:
		return !slices.ContainsFunc(v, func(x uint32) bool { return x != 0 })
	case []uint8:
		return !slices.ContainsFunc(v, func(x uint8) bool { return x != 0 })
	case []float64:
		return !slices.ContainsFunc(v, func(x float64) bool { return x != 0 })
	case []decimal.Decimal:
		return !slices.ContainsFunc(v, func(x decimal.Decimal) bool { return !x.IsZero() })
	case [][]string:
		return !slices.ContainsFunc(v, func(x []string) bool { return len(x) > 0 })
	}
	return false
}

// usageJSON is the usage_json column of one event: what json.Marshal
// writes, without reflection.
func usageJSON(u *schemas.Usage) string {
	js := schemas.AppendUsageJSON(make([]byte, 0, 192), u)
	return unsafe.String(unsafe.SliceData(js), len(js)) // js is not shared
}

// windowColumns returns the columns of the rows at the indices idx.
func windowColumns(all []schemas.WindowRow, idx []int, emittedAt time.Time) ([]column, error) {
	n := len(idx)
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
	for i, at := range idx {
		r := &all[at]
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

// labelsJSON encodes labels as json.Marshal does (keys sorted, so that
// replays write identical rows), into b.text. Labels of plain ASCII, the
// usual case, are written directly; any other byte leaves the escaping to
// encoding/json.
func (b *eventBuffers) labelsJSON(labels map[string]string) string {
	if len(labels) == 0 {
		return "{}"
	}
	b.labelPairs = b.labelPairs[:0]
	for k, v := range labels {
		if !plainJSON(k) || !plainJSON(v) {
			js, err := json.Marshal(labels)
			if err != nil {
				return "{}" // unreachable for map[string]string
			}
			return unsafe.String(unsafe.SliceData(js), len(js))
		}
		b.labelPairs = append(b.labelPairs, [2]string{k, v})
	}
	slices.SortFunc(b.labelPairs, func(x, y [2]string) int { return strings.Compare(x[0], y[0]) })
	start := len(b.text)
	b.text = append(b.text, '{')
	for i, kv := range b.labelPairs {
		if i > 0 {
			b.text = append(b.text, ',')
		}
		b.text = append(b.text, '"')
		b.text = append(b.text, kv[0]...)
		b.text = append(b.text, '"', ':', '"')
		b.text = append(b.text, kv[1]...)
		b.text = append(b.text, '"')
	}
	b.text = append(b.text, '}')
	// b.text only grows until the buffers are released; a reallocation
	// leaves earlier labels in the old array, unchanged.
	return unsafe.String(&b.text[start], len(b.text)-start)
}

// plainJSON reports whether encoding/json writes s as is: printable ASCII
// without the characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// insert writes one INSERT of n rows in blocks of at most blockRows,
// retrying transient failures. The driver marks a batch sent even when
// sending fails, so every attempt builds a new batch from the same columns.
func (s *Store) insert(ctx context.Context, table string, cols []column, n, blockRows int) error {
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
		if err = s.send(ctx, query, cols, n, blockRows); err == nil {
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

func (s *Store) send(ctx context.Context, query string, cols []column, n, blockRows int) error {
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", query[:strings.IndexByte(query, '(')-1], err)
	}
	defer batch.Close()
	for lo := 0; lo < n; lo += blockRows {
		hi := min(lo+blockRows, n)
		for i, c := range cols {
			if err := batch.Column(i).Append(rowRange(c.data, lo, hi, n)); err != nil {
				return fmt.Errorf("%w %s: %w", errAppend, c.name, err)
			}
		}
		if hi < n {
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("sending rows %d-%d of %d: %w", lo, hi, n, err)
			}
		}
	}
	return batch.Send()
}

// rowRange is rows [lo, hi) of a column's slice of n rows.
func rowRange(data any, lo, hi, n int) any {
	if lo == 0 && hi == n {
		return data
	}
	return reflect.ValueOf(data).Slice(lo, hi).Interface()
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

// WriteGPUSettings stores the constants of the GPU views: the energy price
// (USD per kWh) of energy_cost_usd and the grid intensity (gCO2 per kWh) of
// emissions_gco2. The newest write wins.
func (s *Store) WriteGPUSettings(ctx context.Context, energyUSDPerKWh, gridGCO2PerKWh float64) error {
	version := uint64(time.Now().UnixNano())
	cols := []column{
		{"name", []string{SettingEnergy, SettingGridIntensity}},
		{"value", []float64{energyUSDPerKWh, gridGCO2PerKWh}},
		{"version", []uint64{version, version}},
	}
	if err := s.insert(ctx, TableGPUSettings, cols, 2, 2); err != nil {
		return fmt.Errorf("writing GPU settings: %w", err)
	}
	return nil
}
