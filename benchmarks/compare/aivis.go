package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// stack is one measured layout of aivis processes against one database.
type stack struct {
	h          *harness
	db         string
	conn       driver.Conn
	procs      []*proc
	partitions int32
}

// aivisEnv configures a process: the private broker, the fresh database,
// its own ops address with pprof on, and windows that close soon after the
// input ends (idle_timeout) so "all counted" is reached without new data.
func (s *stack) env(extra ...string) []string {
	return append([]string{
		"AIVIS_KAFKA__BROKERS=" + s.h.broker.addr,
		fmt.Sprint("AIVIS_KAFKA__PARTITIONS=", s.partitions),
		"AIVIS_CLICKHOUSE__ADDR=" + s.h.chAddr,
		"AIVIS_CLICKHOUSE__DATABASE=" + s.db,
		"AIVIS_METRICS_ADDR=" + freePort(),
		"AIVIS_PPROF=true",
		"AIVIS_LOG_LEVEL=warn",
		"AIVIS_AGGREGATE__IDLE_TIMEOUT=2s",
		// The scorer reads windows back every few seconds; the peers do
		// nothing like it, so it is left out of the comparison.
		"AIVIS_AGGREGATE__SCORE_ANOMALIES=false",
	}, append(s.h.aivisEnv, extra...)...)
}

// newStack makes a fresh database and migrates it with `aivis migrate`.
func (h *harness) newStack(ctx context.Context, name string, partitions int32) (*stack, error) {
	s := &stack{h: h, db: h.database(name), partitions: partitions}
	m, err := startAivis(h.bin, name+"-migrate", h.logDir, s.env(), "migrate")
	if err != nil {
		return nil, err
	}
	select {
	case <-m.exited:
	case <-time.After(2 * time.Minute):
		m.stop()
		return nil, fmt.Errorf("aivis migrate did not finish within 2 minutes; see %s", m.log)
	case <-ctx.Done():
		m.stop()
		return nil, ctx.Err()
	}
	if m.waitErr != nil {
		return nil, fmt.Errorf("aivis migrate: %v; last lines of %s:\n%s", m.waitErr, m.log, tail(m.log, 15))
	}
	s.conn, err = connectCH(ctx, h.chAddr, s.db)
	return s, err
}

func (s *stack) start(name string, extra []string, args ...string) (*proc, error) {
	p, err := startAivis(s.h.bin, name, s.h.logDir, s.env(extra...), args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *stack) close() {
	for _, p := range s.procs {
		p.stop()
	}
	if s.conn != nil {
		s.conn.Close()
	}
}

func (s *stack) alive() error {
	for _, p := range s.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

// counted reports whether usage_events holds n events and the windows
// count n requests; prog records the events stored.
func (s *stack) counted(ctx context.Context, n int, prog *progress) (bool, string, error) {
	if err := s.alive(); err != nil {
		return false, "", err
	}
	stored, err := queryUint(ctx, s.conn, "SELECT count() FROM usage_events")
	if err != nil {
		return false, "", err
	}
	prog.add(stored)
	if stored < uint64(n) {
		// The windows are summed only once every event is stored: the
		// view's query is the costly one.
		return false, fmt.Sprintf("%d of %d events stored", stored, n), nil
	}
	sum, err := queryUint(ctx, s.conn, "SELECT toUInt64(sum(requests)) FROM cost_by_window")
	if err != nil {
		return false, "", err
	}
	if sum > uint64(n) {
		return false, "", fmt.Errorf("cost_by_window counts %d requests, more than the %d events produced", sum, n)
	}
	return stored >= uint64(n) && sum == uint64(n), fmt.Sprintf("%d of %d events stored, %d counted in windows", stored, n, sum), nil
}

type e2eResult struct {
	EventsPerS   float64          `json:"events_per_s"`
	Processes    map[string]usage `json:"processes"`
	DistinctKeys uint64           `json:"distinct_keys"`
	// WindowRows is the rows the aggregators wrote to cost_windows: one
	// per window, key and partition that saw events.
	WindowRows    uint64  `json:"window_rows"`
	AggregatorRSS int64   `json:"aggregator_peak_rss_bytes"`
	Seconds       float64 `json:"seconds"`
	// SustainedEventsPerS is the rate at which events were stored between
	// 10% and 90% of them (see progress).
	SustainedEventsPerS float64 `json:"sustained_events_per_s"`
	// FirstStoredS and AllStoredS are the seconds from start until the
	// polls saw the first and the last event in usage_events; the rest of
	// Seconds is the last windows closing and being counted.
	FirstStoredS float64 `json:"first_stored_s"`
	AllStoredS   float64 `json:"all_stored_s"`
}

// e2e runs enrich and replicas aggregate processes from the full raw topic
// until every one of n events is stored and counted. With profileDir set it
// takes CPU profiles of enrich and the first aggregate while they work.
// enrichEnv is added to the enrich process's environment.
func (h *harness) e2e(ctx context.Context, name string, n int, partitions int32, replicas int, profileDir string, enrichEnv ...string) (e2eResult, error) {
	s, err := h.newStack(ctx, name, partitions)
	if err != nil {
		return e2eResult{}, err
	}
	defer s.close()
	began := time.Now()
	prog := newProgress(began)
	enr, err := s.start(name+"-enrich", enrichEnv, "enrich")
	if err != nil {
		return e2eResult{}, err
	}
	var aggs []*proc
	for i := 0; i < replicas; i++ {
		a, err := s.start(fmt.Sprintf("%s-aggregate-%d", name, i), nil, "aggregate")
		if err != nil {
			return e2eResult{}, err
		}
		aggs = append(aggs, a)
	}
	var profiles sync.WaitGroup
	if profileDir != "" {
		for _, p := range []*proc{enr, aggs[0]} {
			for _, kind := range []string{"profile", "allocs"} {
				profiles.Add(1)
				go func() {
					defer profiles.Done()
					// Give the process a moment to open its ops endpoint.
					time.Sleep(2 * time.Second)
					path := filepath.Join(profileDir, p.name[len(name)+1:]+map[string]string{"profile": ".cpu.pprof", "allocs": ".allocs.pprof"}[kind])
					if err := p.pprof(ctx, kind, h.profileSeconds, path); err != nil {
						h.warn("%v", err)
						return
					}
					h.mu.Lock()
					h.res.Profiles = append(h.res.Profiles, path)
					h.mu.Unlock()
				}()
			}
		}
	}
	err = waitUntil(ctx, fmt.Sprintf("aivis (%s) to store and count %d events", name, n), h.stepTimeout, 250*time.Millisecond,
		func(ctx context.Context) (bool, string, error) { return s.counted(ctx, n, prog) })
	elapsed := time.Since(began)
	if err != nil {
		return e2eResult{}, err
	}
	r := e2eResult{EventsPerS: float64(n) / elapsed.Seconds(), Seconds: elapsed.Seconds(), Processes: map[string]usage{},
		SustainedEventsPerS: prog.sustained(n)}
	first, all := prog.firstAndAll(n)
	r.FirstStoredS, r.AllStoredS = first.Seconds(), all.Seconds()
	for _, p := range s.procs {
		u, err := p.usage()
		if err != nil {
			return e2eResult{}, err
		}
		r.Processes[p.name[len(name)+1:]] = u
		if p != enr && u.PeakRSSBytes > r.AggregatorRSS {
			r.AggregatorRSS = u.PeakRSSBytes
		}
	}
	r.DistinctKeys, err = queryUint(ctx, s.conn, "SELECT count() FROM (SELECT DISTINCT model, team, project FROM cost_by_window)")
	if err != nil {
		return e2eResult{}, err
	}
	r.WindowRows, err = queryUint(ctx, s.conn, "SELECT count() FROM cost_windows")
	if err != nil {
		return e2eResult{}, err
	}
	profiles.Wait()
	return r, nil
}

type ingestPoint struct {
	BatchEvents int     `json:"batch_events"`
	Requests    int     `json:"requests"`
	Clients     int     `json:"clients"`
	EventsPerS  float64 `json:"events_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// IngestCPUUsPerEvent is the CPU time the ingest process spent on the
	// point, per event: steadier than events/s on a shared machine, where
	// other processes take cores away.
	IngestCPUUsPerEvent float64 `json:"ingest_cpu_us_per_event"`
}

// ingestLoad is one point of the ingest sweep: events per request and
// concurrent clients.
type ingestLoad struct{ size, clients int }

// ingestHTTP posts NDJSON batches of each size to a separate `aivis
// ingest` process from several clients and times each request. With
// profileDir set it takes a CPU and an allocation profile of ingest during
// each point of 500 events per request.
func (h *harness) ingestHTTP(ctx context.Context, d dataset, loads []ingestLoad, profileDir string) ([]ingestPoint, error) {
	token := "bench-" + fmt.Sprint(time.Now().UnixNano())
	sum := sha256.Sum256([]byte(token))
	producers, _ := json.Marshal([]map[string]any{{"name": "bench", "token_sha256": hex.EncodeToString(sum[:])}})
	listen := freePort()
	s := &stack{h: h, partitions: 6, db: h.database("ingest")}
	defer s.close()
	p, err := s.start("ingest", []string{"AIVIS_INGEST__LISTEN_ADDR=" + listen, "AIVIS_INGEST__PRODUCERS=" + string(producers)}, "ingest")
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}
	url := "http://" + listen + "/v1/events"
	next := 0
	var out []ingestPoint
	// Keep-alive connections for every client: the default transport
	// keeps two per host, so more clients would each open a connection
	// per request and time the handshake, not ingest.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}}
	defer client.CloseIdleConnections()
	for _, load := range loads {
		size, clients := load.size, load.clients
		// A bounded number of requests: at most the events there are, and
		// at most 4,000 requests per size.
		reqs := min(len(d.values)/size, 4000)
		bodies := make([][]byte, reqs)
		for i := range bodies {
			var b bytes.Buffer
			for j := 0; j < size; j++ {
				b.Write(d.values[next%len(d.values)])
				b.WriteByte('\n')
				next++
			}
			bodies[i] = b.Bytes()
		}
		lat := make([]time.Duration, reqs)
		var profiles sync.WaitGroup
		if profileDir != "" && size == 500 {
			// Short enough to end within the point at ~100k events/s.
			const seconds = 5
			base := filepath.Join(profileDir, fmt.Sprintf("ingest-%dx%d", size, clients))
			for _, kind := range []string{"profile", "allocs"} {
				profiles.Add(1)
				go func() {
					defer profiles.Done()
					path := base + map[string]string{"profile": ".cpu.pprof", "allocs": ".allocs.pprof"}[kind]
					if err := p.pprof(ctx, kind, seconds, path); err != nil {
						h.warn("%v", err)
						return
					}
					h.mu.Lock()
					h.res.Profiles = append(h.res.Profiles, path)
					h.mu.Unlock()
				}()
			}
		}
		cpu0, err := p.usage()
		if err != nil {
			return nil, err
		}
		work := make(chan int)
		errs := make(chan error, clients)
		var wg sync.WaitGroup
		began := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					t0 := time.Now()
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i]))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/x-ndjson")
					resp, err := client.Do(req)
					if err != nil {
						errs <- fmt.Errorf("POST %s: %w", url, err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						errs <- fmt.Errorf("POST %s with %d events: %s: %s", url, size, resp.Status, bytes.TrimSpace(body))
						return
					}
					lat[i] = time.Since(t0)
				}
			}()
		}
		var sendErr error
	send:
		for i := range bodies {
			select {
			case work <- i:
			case sendErr = <-errs:
				break send
			case <-ctx.Done():
				sendErr = ctx.Err()
				break send
			}
		}
		close(work)
		wg.Wait()
		elapsed := time.Since(began)
		cpu1, err := p.usage()
		if err != nil {
			return nil, err
		}
		profiles.Wait()
		if sendErr == nil {
			select {
			case sendErr = <-errs:
			default:
			}
		}
		if sendErr != nil {
			return nil, fmt.Errorf("ingest at %d events per request: %w", size, sendErr)
		}
		out = append(out, ingestPoint{BatchEvents: size, Requests: reqs, Clients: clients,
			EventsPerS: float64(reqs*size) / elapsed.Seconds(),
			P50Ms:      quantile(lat, 0.5).Seconds() * 1000, P99Ms: quantile(lat, 0.99).Seconds() * 1000,
			IngestCPUUsPerEvent: (cpu1.CPUSeconds - cpu0.CPUSeconds) * 1e6 / float64(reqs*size)})
	}
	return out, nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

type latencyResult struct {
	P50S             float64 `json:"p50_s"`
	P99S             float64 `json:"p99_s"`
	Events           int     `json:"events"`
	RateEventsPerS   float64 `json:"rate_events_per_s"`
	ProduceSeconds   float64 `json:"produce_seconds"`
	WindowS          float64 `json:"window_s"`
	AllowedLatenessS float64 `json:"allowed_lateness_s"`
	OutOfOrderS      float64 `json:"out_of_order_s"`
	// WaitS is how long past its end a window waits for stragglers before
	// it is written: out_of_order (the watermark trails the newest event
	// time by it) plus allowed_lateness (the window stays open that long
	// past the watermark). It is the "allowed lateness", and
	// BoundS = window + wait + 5 s is the goal for P99S.
	WaitS        float64 `json:"wait_s"`
	BoundS       float64 `json:"bound_s"`
	IdleTimeoutS float64 `json:"idle_timeout_s"`
	PollMs       int     `json:"poll_ms"`
	// PipelineP50S and PipelineP99S are, over the windows the watermark
	// closed (not the last one, which the idle timeout closes), the time
	// from window end + wait until the window was complete in
	// cost_by_window: what the stages, Kafka and ClickHouse add.
	PipelineP50S float64 `json:"pipeline_delay_p50_s"`
	PipelineP99S float64 `json:"pipeline_delay_p99_s"`
}

// latency produces fresh events (event time = now) at rate into running
// enrich and aggregate processes for dur (at least a window plus the wait
// plus 5 s), from a window boundary on, and measures for each event the
// time from its produce call until its window's sum of requests in
// cost_by_window reaches the number produced into that window.
func (h *harness) latency(ctx context.Context, d dataset, rate float64, dur time.Duration) (latencyResult, error) {
	// out_of_order stays at its default; allowed_lateness brings the wait
	// to 10 s.
	const window, outOfOrder, lateness, idle = time.Minute, 5 * time.Second, 5 * time.Second, 10 * time.Second
	const wait = outOfOrder + lateness
	res := latencyResult{WindowS: window.Seconds(), AllowedLatenessS: lateness.Seconds(), OutOfOrderS: outOfOrder.Seconds(),
		WaitS: wait.Seconds(), BoundS: (window + wait + 5*time.Second).Seconds(), IdleTimeoutS: idle.Seconds(), PollMs: 250, RateEventsPerS: rate}
	s, err := h.newStack(ctx, "latency", 6)
	if err != nil {
		return res, err
	}
	defer s.close()
	extra := []string{"AIVIS_AGGREGATE__WINDOW=" + window.String(), "AIVIS_AGGREGATE__OUT_OF_ORDER=" + outOfOrder.String(),
		"AIVIS_AGGREGATE__ALLOWED_LATENESS=" + lateness.String(), "AIVIS_AGGREGATE__IDLE_TIMEOUT=" + idle.String()}
	for _, name := range []string{"enrich", "aggregate"} {
		p, err := s.start("latency-"+name, extra, name)
		if err != nil {
			return res, err
		}
		if err := p.waitReady(ctx, time.Minute); err != nil {
			return res, err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.broker.addr), kgo.DefaultProduceTopic(schemas.TopicRaw), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return res, err
	}
	defer cl.Close()

	type win struct {
		produced []time.Time
		visible  time.Time
	}
	var mu sync.Mutex
	wins := map[int64]*win{}
	producing := true
	pollErr := make(chan error, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-tick.C:
			}
			rows, err := s.conn.Query(pollCtx, "SELECT toUInt32(window_start), toUInt64(sum(requests)) FROM cost_by_window GROUP BY window_start")
			if err != nil {
				if pollCtx.Err() == nil {
					pollErr <- err
				}
				return
			}
			now := time.Now()
			mu.Lock()
			for rows.Next() {
				var start uint32
				var sum uint64
				if err := rows.Scan(&start, &sum); err != nil {
					break
				}
				w := wins[int64(start)]
				ended := !producing || now.After(time.Unix(int64(start), 0).Add(window))
				if w != nil && w.visible.IsZero() && ended && sum >= uint64(len(w.produced)) {
					w.visible = now
				}
			}
			mu.Unlock()
			rows.Close()
		}
	}()

	// Start on a window boundary and produce past the first window's end
	// plus the wait, so that a whole window, its earliest events included,
	// is closed by the watermark; the p99 then says what the bound is about.
	if least := window + wait + 5*time.Second; dur < least {
		dur = least
	}
	select {
	case <-time.After(time.Until(time.Now().Truncate(window).Add(window))):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	began := time.Now()
	var failed error
	var failMu sync.Mutex
	i := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Since(began) < dur {
		<-tick.C
		if err := s.alive(); err != nil {
			tick.Stop()
			return res, err
		}
		due := int(rate*time.Since(began).Seconds()) - i
		for ; due > 0; due-- {
			ev := *d.events[i%len(d.events)]
			ev.EventID = fmt.Sprintf("lat-%d-%d", began.UnixNano(), i)
			now := time.Now()
			ev.Time = now.UTC()
			b, err := json.Marshal(&ev)
			if err != nil {
				return res, err
			}
			w := now.Truncate(window).Unix()
			mu.Lock()
			if wins[w] == nil {
				wins[w] = &win{}
			}
			wins[w].produced = append(wins[w].produced, now)
			mu.Unlock()
			cl.Produce(ctx, &kgo.Record{Key: []byte(ev.EventID), Value: b}, func(_ *kgo.Record, err error) {
				if err != nil {
					failMu.Lock()
					failed = err
					failMu.Unlock()
				}
			})
			i++
		}
	}
	tick.Stop()
	if err := cl.Flush(ctx); err != nil {
		return res, err
	}
	failMu.Lock()
	if failed != nil {
		return res, fmt.Errorf("producing latency events: %w", failed)
	}
	failMu.Unlock()
	res.Events, res.ProduceSeconds = i, time.Since(began).Seconds()
	mu.Lock()
	producing = false
	mu.Unlock()
	err = waitUntil(ctx, "every latency window to be visible in cost_by_window", window+lateness+idle+2*time.Minute, 250*time.Millisecond,
		func(context.Context) (bool, string, error) {
			select {
			case err := <-pollErr:
				return false, "", err
			default:
			}
			if err := s.alive(); err != nil {
				return false, "", err
			}
			mu.Lock()
			defer mu.Unlock()
			left := 0
			for _, w := range wins {
				if w.visible.IsZero() {
					left++
				}
			}
			return left == 0, fmt.Sprintf("%d of %d windows not complete", left, len(wins)), nil
		})
	if err != nil {
		return res, err
	}
	var lat, pipeline []time.Duration
	var last int64
	for start := range wins {
		last = max(last, start)
	}
	for start, w := range wins {
		for _, t := range w.produced {
			lat = append(lat, w.visible.Sub(t))
		}
		if start != last {
			pipeline = append(pipeline, w.visible.Sub(time.Unix(start, 0).Add(window+wait)))
		}
	}
	res.P50S, res.P99S = quantile(lat, 0.5).Seconds(), quantile(lat, 0.99).Seconds()
	if len(pipeline) > 0 {
		res.PipelineP50S, res.PipelineP99S = quantile(pipeline, 0.5).Seconds(), quantile(pipeline, 0.99).Seconds()
	}
	return res, nil
}

// aggregatorRSS feeds one aggregate process enriched events spanning keys
// distinct (model, team, project) keys in open windows, and returns its
// peak RSS once all of them are counted (the idle timeout emits them).
func (h *harness) aggregatorRSS(ctx context.Context, base dataset, keys int, name string, env []string) (int64, error) {
	count := 2 * keys
	d, err := enrichedFor(base, keys, count)
	if err != nil {
		return 0, err
	}
	if _, err := produce(ctx, h.broker.addr, schemas.TopicEnriched, d.keys, d.values); err != nil {
		return 0, err
	}
	s, err := h.newStack(ctx, name, 6)
	if err != nil {
		return 0, err
	}
	defer s.close()
	p, err := s.start(name+"-aggregate", env, "aggregate")
	if err != nil {
		return 0, err
	}
	err = waitUntil(ctx, fmt.Sprintf("the aggregator to count %d events over %d keys", count, keys), h.stepTimeout, 250*time.Millisecond,
		func(ctx context.Context) (bool, string, error) {
			if err := p.alive(); err != nil {
				return false, "", err
			}
			sum, err := queryUint(ctx, s.conn, "SELECT toUInt64(sum(requests)) FROM cost_by_window")
			return sum == uint64(count), fmt.Sprintf("%d of %d counted", sum, count), err
		})
	if err != nil {
		return 0, err
	}
	u, err := p.usage()
	return u.PeakRSSBytes, err
}
