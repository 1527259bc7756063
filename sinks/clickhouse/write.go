package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// maxBackoff caps the wait between two attempts of one insert.
const maxBackoff = 30 * time.Second

// column pairs a column name with its values so that the INSERT's column
// list and the appended data cannot drift apart. An omittable column holds
// in every row what the server would fill in for a column left out of the
// INSERT.
type column struct {
	name     string
	data     any
	omitable bool
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
// holds only one block's columns and buffers at a time: they are built
// block by block into buffers the Store keeps from one Write to the next.
// Each INSERT is retried with exponential backoff and jitter
// up to MaxRetries times or until ctx ends. Rewriting the same events or
// rows is harmless: both tables are ReplacingMergeTrees keyed so that a
// replay collapses onto the first write.
func (s *Store) Write(ctx context.Context, events []schemas.StoredEvent, rows []schemas.WindowRow) error {
	if len(events) > 0 {
		for i, se := range events {
			if se.Event == nil {
				return fmt.Errorf("writing events: event at index %d (partition %d, offset %d) has no payload; this is a bug in the caller", i, se.Partition, se.Offset)
			}
		}
		buf := s.eventBufs.Swap(nil) // nil while another Write has it
		if buf == nil {
			buf = new(eventBuffers)
		}
		err := s.insert(ctx, TableEvents, len(events), maxEventsPerBlock, &buf.mem, func(lo, hi int) ([]column, error) {
			return buf.columns(events[lo:hi])
		})
		buf.release()
		s.eventBufs.Store(buf)
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
		if err := s.insert(ctx, TableWindows, len(group), len(group), nil, whole(cols)); err != nil {
			return err
		}
	}
	return nil
}

// whole is the block function of an INSERT sent as one block of cols.
func whole(cols []column) func(lo, hi int) ([]column, error) {
	return func(int, int) ([]column, error) { return cols, nil }
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

// eventBuffers are the columns of one block of an events INSERT, kept
// from one block and one Write to the next so that a block of 16,384
// events does not allocate and zero 50 slices of 16,384 values; the driver
// copies what it sends.
type eventBuffers struct {
	ids, kinds, sources, providers, models, operations []string
	statuses, errorTypes, tiers, teams, projects       []string
	costCenters, keyIDs, costSources, catalogs, prices []string
	labels, rawUsage, usageJSON, providerCosts         []string
	canonicalModels                                    []string
	gpuModels, gpuHosts, migProfiles, gpuOwnerKinds    []string
	gpuOwnerIDs, pricingCategories                     []string
	endUsers, regions, endpoints                       []string
	tags, warnings                                     [][]string
	warningText                                        []string // backs warnings' rows
	requestBytes, responseBytes                        []int64
	requestCounts                                      []uint32
	unapproved, regionNotAllowed, missingLabels        []uint8
	allocatedGPU, busyGPU, energyJoules                []float64
	times                                              []time.Time
	latencies, offsets                                 []int64
	input, cacheRead, cacheWrite, output, reasoning    []int64
	costs                                              []int64 // pico-USD
	unpriced, unowned                                  []uint8
	partitions                                         []uint32
	ratingVersions                                     []uint64

	text       []byte      // backs the labels' and usage's JSON
	labelPairs [][2]string // scratch for sorting labels by key
	// mem is the driver's column memory of the last events INSERT.
	mem columnMemory
}

func sized[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// release drops the references to events so that kept buffers do not
// keep them alive.
func (b *eventBuffers) release() {
	for _, s := range [][]string{b.ids, b.kinds, b.sources, b.providers, b.models, b.operations,
		b.statuses, b.errorTypes, b.tiers, b.teams, b.projects, b.costCenters, b.keyIDs,
		b.costSources, b.catalogs, b.prices, b.labels, b.rawUsage, b.usageJSON, b.providerCosts, b.canonicalModels,
		b.gpuModels, b.gpuHosts, b.migProfiles, b.gpuOwnerKinds, b.gpuOwnerIDs, b.pricingCategories,
		b.endUsers, b.regions, b.endpoints} {
		clear(s[:cap(s)]) // a Write's first INSERT may have been its longest
	}
	clear(b.tags[:cap(b.tags)])
	clear(b.warnings[:cap(b.warnings)])
	clear(b.warningText[:cap(b.warningText)])
	clear(b.labelPairs[:cap(b.labelPairs)])
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
	b.warnings, b.warningText = pricingWarnings(events, b.warnings, b.warningText)
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
			b.usageJSON[i] = b.appendUsageJSON(u)
		} else {
			b.input[i], b.cacheRead[i], b.cacheWrite[i], b.output[i], b.reasoning[i] = 0, 0, 0, 0, 0
		}
		b.costs[i] = e.CostPicos
		b.costSources[i], b.catalogs[i], b.prices[i] = e.CostSource, e.Pricing.CatalogVersion, e.Pricing.PriceID
		b.unpriced[i], b.unowned[i] = flag(e.Flags.Unpriced), flag(e.Flags.Unowned)
		if len(e.Labels) == 0 && len(e.LabelsJSON) > 0 {
			// Kept as AppendJSON writes them, which is labelsJSON's text.
			b.labels[i] = unsafe.String(unsafe.SliceData(e.LabelsJSON), len(e.LabelsJSON))
		} else {
			b.labels[i] = b.labelsJSON(e.Labels)
		}
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
		{name: "event_id", data: b.ids}, {name: "time", data: b.times}, {name: "date", data: b.times},
		{name: "kind", data: b.kinds}, {name: "source", data: b.sources}, {name: "provider", data: b.providers}, {name: "model", data: b.models},
		{name: "canonical_model", data: b.canonicalModels},
		{name: "operation", data: b.operations}, {name: "status", data: b.statuses}, {name: "error_type", data: b.errorTypes},
		{name: "latency_ms", data: b.latencies}, {name: "service_tier", data: b.tiers},
		{name: "team", data: b.teams}, {name: "project", data: b.projects}, {name: "cost_center", data: b.costCenters}, {name: "api_key_id", data: b.keyIDs},
		{name: "input_tokens", data: b.input}, {name: "cache_read_input_tokens", data: b.cacheRead}, {name: "cache_write_input_tokens", data: b.cacheWrite},
		{name: "output_tokens", data: b.output}, {name: "reasoning_output_tokens", data: b.reasoning},
		{name: "cost_usd", data: picoUSD(b.costs)}, {name: "cost_source", data: b.costSources}, {name: "catalog_version", data: b.catalogs}, {name: "price_id", data: b.prices},
		{name: "unpriced", data: b.unpriced}, {name: "unowned", data: b.unowned}, {name: "labels", data: b.labels}, {name: "raw_usage", data: b.rawUsage},
		{name: "src_partition", data: b.partitions}, {name: "src_offset", data: b.offsets}, {name: "rating_version", data: b.ratingVersions},
		{name: "usage_json", data: b.usageJSON}, {name: "provider_cost_usd", data: b.providerCosts},
		{name: "pricing_warnings", data: b.warnings},
		{name: "gpu_model", data: b.gpuModels}, {name: "gpu_host", data: b.gpuHosts}, {name: "mig_profile", data: b.migProfiles},
		{name: "gpu_owner_kind", data: b.gpuOwnerKinds}, {name: "gpu_owner_id", data: b.gpuOwnerIDs}, {name: "pricing_category", data: b.pricingCategories},
		{name: "allocated_gpu_seconds", data: b.allocatedGPU}, {name: "busy_gpu_seconds", data: b.busyGPU}, {name: "energy_joules", data: b.energyJoules},
		{name: "end_user", data: b.endUsers}, {name: "tags", data: b.tags}, {name: "request_bytes", data: b.requestBytes}, {name: "response_bytes", data: b.responseBytes},
		{name: "provider_region", data: b.regions}, {name: "provider_endpoint", data: b.endpoints},
		{name: "unapproved", data: b.unapproved}, {name: "region_not_allowed", data: b.regionNotAllowed}, {name: "missing_labels", data: b.missingLabels},
	}
	// A column that is empty or zero in every event can be left out of
	// the INSERT (see send): the server fills in the same value (the one
	// DEFAULT expression, canonical_model's, is model, and canonical_model
	// is empty only where model is), and neither side spends time on it.
	// Optional fields (operation, error_type, cost_center, cache tokens,
	// flags, ...) are often unset in a whole batch.
	for i := range all[3:] {
		all[3+i].omitable = allZero(all[3+i].data)
	}
	// request_count's DEFAULT is 1, what almost every event stands for.
	all = append(all, column{name: "request_count", data: b.requestCounts,
		omitable: !slices.ContainsFunc(b.requestCounts, func(c uint32) bool { return c != 1 })})
	return all, nil
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

// appendUsageJSON is the usage_json column of one event: what json.Marshal
// writes, without reflection, in b.text as labelsJSON writes.
func (b *eventBuffers) appendUsageJSON(u *schemas.Usage) string {
	start := len(b.text)
	b.text = schemas.AppendUsageJSON(b.text, u)
	return unsafe.String(&b.text[start], len(b.text)-start)
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
		costs                                           = make(picoSums, n)
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
		if !fitsDecimal38(r.CostPicos) {
			_, err := sumToUSD(r.CostPicos) // says why
			return nil, fmt.Errorf("writing window rows: the cost of window %s %s/%s of team %s: %w",
				r.WindowStart.UTC().Format(time.RFC3339), r.Provider, r.Model, r.Team, err)
		}
		costs[i] = r.CostPicos
		latencyCount[i], latencySum[i] = r.LatencyCount, r.LatencySumMs
		hists[i] = r.LatencyHist
		if hists[i] == nil {
			hists[i] = []uint64{}
		}
		emitted[i] = emittedAt
	}
	return []column{
		{name: "window_start", data: starts}, {name: "window_seconds", data: seconds},
		{name: "provider", data: providers}, {name: "model", data: models}, {name: "team", data: teams}, {name: "project", data: projects},
		{name: "src_partition", data: partitions}, {name: "through_offset", data: through},
		{name: "requests", data: requests}, {name: "errors", data: errs}, {name: "unpriced_requests", data: unpriced},
		{name: "input_tokens", data: input}, {name: "cache_read_input_tokens", data: cacheRead}, {name: "cache_write_input_tokens", data: cacheWrite},
		{name: "output_tokens", data: output}, {name: "reasoning_output_tokens", data: reasoning},
		{name: "cost_usd", data: costs}, {name: "latency_count", data: latencyCount}, {name: "latency_sum_ms", data: latencySum},
		{name: "latency_hist", data: hists}, {name: "emitted_at", data: emitted},
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
func (s *Store) insert(ctx context.Context, table string, n, blockRows int, mem *columnMemory, block func(lo, hi int) ([]column, error)) error {
	start := time.Now()
	var err error
	attempts := 0
	for {
		attempts++
		if err = s.send(ctx, table, n, blockRows, mem, block); err == nil {
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

// send writes n rows into table in blocks of blockRows, whose columns
// block returns; every block has the same columns. The blocks go in one
// INSERT, which leaves out the columns omitable in every block seen so
// far; a block that needs one of them ends the INSERT and starts another
// with it. So a flush whose events all leave a field unset sends no
// column for it, and one that sets a field only in its later events
// makes two parts instead of one.
//
// mem, when not nil, lends the INSERTs' columns the memory of the last
// INSERT's and keeps theirs for the next (see columnMemory).
func (s *Store) send(ctx context.Context, table string, n, blockRows int, mem *columnMemory, block func(lo, hi int) ([]column, error)) error {
	ctx = bounded(ctx)
	var batch driver.Batch
	done := func() {
		if ctx.Err() != nil {
			// Past the caller's deadline nothing more may land: close the
			// connection without ending the INSERT, and the server drops it.
			batch.Abort()
		} else {
			batch.Close()
		}
		mem.take(batch.Columns())
		batch = nil
	}
	defer func() {
		if batch != nil {
			done()
		}
	}()
	var sent []bool                  // the columns of batch, by index in a block's columns
	var driverCols []chcol.Interface // batch's columns
	for lo := 0; lo < n; lo += blockRows {
		hi := min(lo+blockRows, n)
		if batch != nil {
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("sending rows %d-%d of %d: %w", lo-blockRows, lo, n, err)
			}
		}
		cols, err := block(lo, hi)
		if err != nil {
			return fmt.Errorf("%w: building rows %d-%d of %d: %w", errAppend, lo, hi, n, err)
		}
		if sent != nil && len(sent) != len(cols) {
			return fmt.Errorf("%w: rows %d-%d of %d have %d columns, earlier rows %d; this is a bug", errAppend, lo, hi, n, len(cols), len(sent))
		}
		needs := false
		for i, c := range cols {
			needs = needs || !c.omitable && (sent == nil || !sent[i])
		}
		if needs && batch != nil {
			// Ends the INSERT: its rows so far are durable whatever the
			// rest does, and a retry writes them again, which is harmless.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("ending the INSERT of rows 0-%d of %d: %w", lo, n, err)
			}
			if err := batch.Send(); err != nil {
				return fmt.Errorf("sending rows 0-%d of %d: %w", lo, n, err)
			}
			done()
		}
		fresh := batch == nil
		if batch == nil {
			if sent == nil {
				sent = make([]bool, len(cols))
			}
			var names []string
			for i, c := range cols {
				sent[i] = sent[i] || !c.omitable
				if sent[i] {
					names = append(names, c.name)
				}
			}
			if batch, err = s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(names, ", ")+")"); err != nil {
				return fmt.Errorf("preparing INSERT INTO %s: %w", table, err)
			}
			driverCols = batch.Columns()
			mem.lend(driverCols)
		}
		if fresh {
			reserveStrings(driverCols, cols, sent)
		}
		k := 0
		for i, c := range cols {
			if !sent[i] {
				continue
			}
			if k < len(driverCols) && appendTyped(driverCols[k], c.data) {
				k++
				continue
			}
			data := c.data
			if d, ok := data.(interface{ decimals() []decimal.Decimal }); ok {
				data = d.decimals() // picoUSD, picoSums
			}
			if err := batch.Column(k).Append(data); err != nil {
				return fmt.Errorf("%w %s: %w", errAppend, c.name, err)
			}
			k++
		}
	}
	if batch == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ending the INSERT of %d rows: %w", n, err) // done aborts it
	}
	beforeSend()
	return batch.Send() // done, deferred, keeps the columns' memory
}

// beforeSend runs just before the last block of an INSERT goes out (tests
// freeze the process there).
var beforeSend = func() {}

// bounded makes an INSERT under a deadline one the server gives up on too.
// The driver closes the connection when ctx ends, and the server then
// drops an unfinished INSERT; but a process frozen mid-INSERT (SIGSTOP, a
// suspended VM, a long stall) cannot close anything, and when it resumes
// its last block could still race the closing and land after the
// deadline. The aggregator relies on that deadline: past it, another
// replica may own the partition and count the same events. So the INSERT
// also carries receive_timeout, the time left: the server abandons an
// INSERT whose client goes quiet that long, and a frozen one's INSERT is
// gone before it wakes up. (The setting counts whole seconds.)
func bounded(ctx context.Context) context.Context {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	secs := max(1, int(time.Until(deadline)/time.Second))
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"receive_timeout": secs}))
}

// reserveStrings sizes the String columns of a new INSERT for the block
// about to be appended, so that each grows once instead of step by step:
// the driver's columns keep their memory only from one block to the next
// within an INSERT (and columnMemory lends them the last INSERT's), and a
// slice grown by append past a few kilobytes copies about four times its
// final size. A column takes one string of its block's length, then Reset
// empties it and keeps the memory. cols are the block's columns, sent says
// which of them the INSERT has, in batch's order.
func reserveStrings(batch []chcol.Interface, cols []column, sent []bool) {
	need, k := 0, 0
	totals := make([]int, len(batch))
	for i, c := range cols {
		if !sent[i] {
			continue
		}
		if strs, ok := c.data.([]string); ok && k < len(batch) {
			for _, v := range strs {
				totals[k] += len(v)
			}
			if totals[k] < minReserve || columnCapacity(batch[k]) >= totals[k] {
				totals[k] = 0 // no need
			}
			need = max(need, totals[k])
		}
		k++
	}
	if need == 0 {
		return
	}
	scratch := make([]byte, need)
	for k, col := range batch {
		s, ok := col.(*chcol.String)
		if !ok || totals[k] == 0 {
			continue
		}
		if _, err := s.Append([]string{unsafe.String(&scratch[0], totals[k])}); err == nil {
			s.Reset()
		}
	}
}

// minReserve is the least a column's strings take for reserveStrings to
// size it: below it, growing step by step costs little.
const minReserve = 64 << 10

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
		{name: "name", data: []string{SettingEnergy, SettingGridIntensity}},
		{name: "value", data: []float64{energyUSDPerKWh, gridGCO2PerKWh}},
		{name: "version", data: []uint64{version, version}},
	}
	if err := s.insert(ctx, TableGPUSettings, 2, 2, nil, whole(cols)); err != nil {
		return fmt.Errorf("writing GPU settings: %w", err)
	}
	return nil
}
