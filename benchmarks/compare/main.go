// Command compare measures aivis against what a ClickHouse user would run
// instead, on the same records in one run: a raw consumer (the ceiling),
// ClickHouse's own Kafka engine with materialized views (the peer), a naive
// Go consumer, and aivis's enrich and aggregate processes as deployed; then
// ingest over HTTP, end-to-end latency, aggregator memory and scaling.
//
// It starts a private Kafka broker (deploy/scripts/kafka.sh on its own port
// and directory, because aivis's topic names are fixed and tests on the
// shared broker delete them), uses fresh ClickHouse databases that it drops
// at the end, and writes one JSON file plus a markdown table on stdout.
//
//	go run ./benchmarks/compare -events 1000000 -out benchmarks/results/latest.json
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/aivis-dev/aivis/schemas"
)

type harness struct {
	bin, chAddr, logDir string
	broker              *broker
	adm                 *kadm.Client
	conn                driver.Conn
	stepTimeout         time.Duration
	profileSeconds      int
	runID               string
	// aivisEnv is added to every aivis process's environment (-aivis-env),
	// for trying settings without editing the harness.
	aivisEnv []string
	// latencyRate overrides the latency measurement's rate (-latency-rate).
	latencyRate float64

	// stepEvents is how many events a step processes, for StepCPU's per
	// event figure: the steps over the main N records.
	stepEvents map[string]int

	mu        sync.Mutex
	res       result
	databases []string
}

type scalePoint struct {
	Param         int     `json:"param"`
	Events        int     `json:"events"`
	EventsPerS    float64 `json:"events_per_s"`
	AggregatorRSS int64   `json:"aggregator_peak_rss_bytes"`
	DistinctKeys  uint64  `json:"distinct_keys"`
	WindowRows    uint64  `json:"window_rows"`
	// EnrichCPUUsPerEvent and AggregateCPUUsPerEvent are the CPU time of
	// the enrich process and of all aggregate replicas together, per event.
	// A point's events/s is mostly the seconds that do not grow with its
	// input (starting the processes, joining the group, the flush interval
	// and the idle timeout that closes the last windows), and moves with
	// whatever else the machine runs; the CPU an event costs each stage is
	// what its keys, partitions or replicas change.
	EnrichCPUUsPerEvent    float64 `json:"enrich_cpu_us_per_event"`
	AggregateCPUUsPerEvent float64 `json:"aggregate_cpu_us_per_event"`
}

// scaleOf makes the scaling point of an e2e run over n events.
func scaleOf(r e2eResult, n int) scalePoint {
	p := scalePoint{Events: n, EventsPerS: r.EventsPerS, AggregatorRSS: r.AggregatorRSS, DistinctKeys: r.DistinctKeys,
		WindowRows: r.WindowRows}
	if n == 0 {
		return p
	}
	for name, u := range r.Processes {
		us := u.CPUSeconds * 1e6 / float64(n)
		if name == "enrich" {
			p.EnrichCPUUsPerEvent += us
		} else {
			p.AggregateCPUUsPerEvent += us
		}
	}
	return p
}

type result struct {
	Machine      map[string]string `json:"machine"`
	Command      string            `json:"command"`
	Events       int               `json:"events"`
	PayloadBytes int64             `json:"payload_bytes"`
	Partitions   int32             `json:"partitions"`

	RawCeiling float64 `json:"raw_ceiling_events_per_s"`
	PeerSums   float64 `json:"peer_ch_kafka_sums_only_events_per_s"`
	Peer       float64 `json:"peer_ch_kafka_events_per_s"`
	// The *_sustained_* rates are taken between 10% and 90% of the events
	// counted (stored, for aivis and the storing peer), leaving out
	// start-up and the last windows' close (see progress).
	PeerSumsSustained float64 `json:"peer_ch_kafka_sums_only_sustained_events_per_s"`
	PeerSustained     float64 `json:"peer_ch_kafka_sustained_events_per_s"`
	E2ESustained      float64 `json:"e2e_sustained_events_per_s"`
	// PeerMissing and PeerSumsMissing count records the Kafka engine left
	// uncounted (see peerCH); 0 when it counted every one.
	PeerMissing     int `json:"peer_ch_kafka_events_missing"`
	PeerSumsMissing int `json:"peer_ch_kafka_sums_only_events_missing"`
	// PeerExtra and PeerSumsExtra count the events the Kafka engine
	// counted twice (it delivers at least once; see peerCH).
	PeerExtra     int `json:"peer_ch_kafka_events_counted_twice,omitempty"`
	PeerSumsExtra int `json:"peer_ch_kafka_sums_only_events_counted_twice,omitempty"`
	PeerConsumers int `json:"peer_ch_kafka_num_consumers"`
	// IngestClients is the concurrency of the headline ingest point: the
	// fastest 500-event point with p99 under 50 ms (else the fastest).
	IngestClients int `json:"ingest_http_clients"`
	// AivisEnv lists the settings given with -aivis-env.
	AivisEnv   []string   `json:"aivis_env,omitempty"`
	PeerFormat string     `json:"peer_ch_kafka_format"`
	E2E        float64    `json:"e2e_events_per_s"`
	E2EDetail  *e2eResult `json:"e2e_detail,omitempty"`
	// E2EProtobuf is e2e with enrich.output_format: protobuf, the enriched
	// topic in schemas/enriched_v1.proto instead of JSON.
	E2EProtobuf          float64    `json:"e2e_protobuf_events_per_s"`
	E2EProtobufSustained float64    `json:"e2e_protobuf_sustained_events_per_s"`
	E2EProtobufDetail    *e2eResult `json:"e2e_protobuf_detail,omitempty"`
	Naive                float64    `json:"naive_events_per_s"`

	IngestHTTP   float64       `json:"ingest_http_events_per_s"`
	IngestP99Ms  float64       `json:"ingest_http_p99_ms"`
	IngestBySize []ingestPoint `json:"ingest_http_by_batch"`
	EnrichCore   float64       `json:"enrich_events_per_s_core"`
	EnrichBench  string        `json:"enrich_benchmark"`
	// EnrichCoreMixed is the same stage over a stream of three gateways,
	// 40 owners and ten models (enrichMixedBench), where what the stage
	// keeps from one record is as often missing for the next as in the
	// field; EnrichCore repeats one record.
	EnrichCoreMixed float64 `json:"enrich_events_per_s_core_mixed"`
	AggregateCore   float64 `json:"aggregate_events_per_s_core"`
	// MicroSamples holds each per-core benchmark's ns an event in every
	// one of its microRuns runs; the figures above take their median.
	// MicroPGO is the profile they were built with (pgoProfile, as
	// bin/aivis is, or "off"); MicroSamplesNoPGO the same runs built
	// without one.
	MicroSamples      map[string][]float64 `json:"micro_ns_per_event_samples,omitempty"`
	MicroPGO          string               `json:"micro_pgo_profile,omitempty"`
	MicroSamplesNoPGO map[string][]float64 `json:"micro_ns_per_event_samples_without_pgo,omitempty"`

	LatencyP50 float64        `json:"e2e_p50_latency_s"`
	LatencyP99 float64        `json:"e2e_p99_latency_s"`
	Latency    *latencyResult `json:"e2e_latency_detail,omitempty"`

	AggRSS100k int64 `json:"aggregator_rss_100k_keys_bytes"`
	// AggRSS100kLimited is the same with memory_limit_mib=768, the
	// setting for a 1 GiB container.
	AggRSS100kLimited int64 `json:"aggregator_rss_100k_keys_memory_limit_768mib_bytes"`

	Scaling struct {
		Keys       []scalePoint `json:"keys"`
		Partitions []scalePoint `json:"partitions"`
		Replicas   []scalePoint `json:"aggregate_replicas"`
	} `json:"scaling"`

	// StepCPU is the CPU each step cost the machine, by step name.
	StepCPU  map[string]stepCPU `json:"step_cpu"`
	Ratios   map[string]float64 `json:"ratios"`
	Profiles []string           `json:"profiles,omitempty"`
	Warnings []string           `json:"warnings,omitempty"`
	Errors   map[string]string  `json:"errors,omitempty"`
	Seconds  float64            `json:"seconds"`
}

func (h *harness) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "compare: warning:", msg)
	h.mu.Lock()
	h.res.Warnings = append(h.res.Warnings, msg)
	h.mu.Unlock()
}

func (h *harness) database(name string) string {
	db := "aivis_bench_" + h.runID + "_" + name
	h.mu.Lock()
	h.databases = append(h.databases, db)
	h.mu.Unlock()
	return db
}

// step runs fn under its own timeout; a failure is recorded and printed,
// and the run goes on with the next step.
func (h *harness) step(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) bool {
	if ctx.Err() != nil {
		return false
	}
	fmt.Fprintf(os.Stderr, "compare: %s …\n", name)
	began := time.Now()
	cpu0 := h.cpuSnap()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := fn(sctx)
	stopAll() // a step leaves no process behind, whatever happened
	h.mu.Lock()
	h.res.StepCPU[name] = h.cpuSnap().since(cpu0, h.stepEvents[name])
	h.mu.Unlock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %s FAILED after %s: %v\n", name, time.Since(began).Round(time.Second), err)
		h.mu.Lock()
		h.res.Errors[name] = err.Error()
		h.mu.Unlock()
		return false
	}
	fmt.Fprintf(os.Stderr, "compare: %s done in %s\n", name, time.Since(began).Round(100*time.Millisecond))
	return true
}

func main() {
	events := flag.Int("events", 1_000_000, "events in the main comparison")
	scaleEvents := flag.Int("scale-events", 200_000, "events in each run of the scaling curves")
	out := flag.String("out", "benchmarks/results/latest.json", "where to write the results")
	chAddr := flag.String("clickhouse", envOr("AIVISDEV_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address (AIVISDEV_CLICKHOUSE_ADDR)")
	kafkaPort := flag.Int("kafka-port", 29092, "port of the private Kafka broker (the controller takes the next one)")
	kafkaDir := flag.String("kafka-dir", ".aivis/bench-kafka", "data directory of the private broker (wiped at start and end)")
	bin := flag.String("bin", "bin/aivis", "aivis binary (built from ./cmd/aivis first)")
	stepTimeout := flag.Duration("step-timeout", 10*time.Minute, "bound on each measurement")
	total := flag.Duration("timeout", 40*time.Minute, "bound on the whole run")
	latencyFor := flag.Duration("latency-duration", 75*time.Second, "how long fresh events are produced for the latency measurement")
	latencyRate := flag.Float64("latency-rate", 0, "events/s of the latency measurement (0: half the rate the e2e step sustained)")
	profileSeconds := flag.Int("profile-seconds", 15, "length of the CPU profiles of enrich and aggregate (0: none)")
	consumers := flag.Int("peer-consumers", runtime.NumCPU(), "num_consumers of ClickHouse's Kafka engine table")
	skipList := flag.String("skip", "", "comma-separated steps to leave out: micro, raw, peer, naive, e2e, e2e-protobuf, ingest, latency, rss, scaling")
	aivisEnv := flag.String("aivis-env", "", "comma-separated AIVIS_KEY=value (or GOMEMLIMIT=, GOGC=) settings added to every aivis process, e.g. AIVIS_AGGREGATE__FLUSH_INTERVAL=5s")
	flag.Parse()
	skip := map[string]bool{}
	for _, s := range strings.Split(*skipList, ",") {
		skip[strings.TrimSpace(s)] = true
	}

	ctx, cancel := context.WithTimeout(context.Background(), *total)
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "compare: interrupted; cleaning up (again to exit at once)")
		cancel()
		<-sig
		stopAll()
		os.Exit(130)
	}()

	began := time.Now()
	h := &harness{
		bin: *bin, chAddr: *chAddr, stepTimeout: *stepTimeout, profileSeconds: *profileSeconds, latencyRate: *latencyRate,
		runID:  strconv.FormatInt(began.Unix(), 10),
		broker: &broker{port: *kafkaPort, dir: *kafkaDir, script: "deploy/scripts/kafka.sh", addr: fmt.Sprintf("127.0.0.1:%d", *kafkaPort)},
	}
	for _, kv := range strings.Split(*aivisEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !(strings.HasPrefix(kv, "AIVIS_") || strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GOGC=")) || !strings.Contains(kv, "=") {
				fatal(fmt.Errorf("-aivis-env: %q is not an AIVIS_KEY=value, GOMEMLIMIT= or GOGC= setting", kv))
			}
			h.aivisEnv = append(h.aivisEnv, kv)
		}
	}
	h.res.AivisEnv = h.aivisEnv
	h.res.Errors = map[string]string{}
	h.res.StepCPU = map[string]stepCPU{}
	h.stepEvents = map[string]int{}
	for _, name := range []string{"raw ceiling", "peer sums only", "peer sums + events", "naive", "e2e", "e2e protobuf"} {
		h.stepEvents[name] = *events
	}
	h.res.Command = "go run ./benchmarks/compare " + strings.Join(os.Args[1:], " ")
	h.res.Events = *events
	h.res.Partitions = 6
	resultsDir := filepath.Dir(*out)
	h.logDir = filepath.Join(resultsDir, "logs")
	if err := os.MkdirAll(h.logDir, 0o755); err != nil {
		fatal(err)
	}
	// The tree as measured: before the run writes its profiles, which are
	// tracked files, next to the results.
	commit, dirty := gitState()
	if err := run(ctx, h, *events, *scaleEvents, *consumers, *latencyFor, resultsDir, skip); err != nil {
		h.res.Errors["setup"] = err.Error()
		fmt.Fprintln(os.Stderr, "compare:", err)
	}
	h.cleanup()
	h.res.Seconds = time.Since(began).Seconds()
	h.res.Machine = machine(ctx, h.chAddr, h.broker)
	if commit != "" {
		h.res.Machine["git_commit"] = commit
	}
	if dirty {
		h.res.Machine["git_dirty"] = "true"
	}
	h.res.Ratios = ratios(h.res)
	b, _ := json.MarshalIndent(h.res, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
	fmt.Print(table(h.res))
	fmt.Fprintf(os.Stderr, "compare: wrote %s in %s\n", *out, time.Since(began).Round(time.Second))
	if len(h.res.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "compare: %d step(s) failed: see \"errors\" in %s\n", len(h.res.Errors), *out)
		os.Exit(1)
	}
}

// gitState is the commit of the working tree and whether tracked files
// differ from it, leaving out benchmarks/results, which holds what runs
// write (a run's results not yet committed do not change what the next
// one measures).
func gitState() (commit string, dirty bool) {
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)benchmarks/results").Output()
	return commit, err == nil && len(out) > 0
}

func run(ctx context.Context, h *harness, n, scaleN, consumers int, latencyFor time.Duration, resultsDir string, skip map[string]bool) error {
	if !skip["micro"] {
		h.step(ctx, "micro", 5*time.Minute, h.micro)
	}
	if _, err := os.Stat(h.bin); err != nil {
		return fmt.Errorf("%s is missing: build it with `go build -o %s ./cmd/aivis` (make bench does)", h.bin, h.bin)
	}
	var err error
	if h.conn, err = connectCH(ctx, h.chAddr, "default"); err != nil {
		return err
	}
	if !h.step(ctx, "private kafka up", 4*time.Minute, h.broker.up) {
		return fmt.Errorf("could not start the private Kafka broker on %s", h.broker.addr)
	}
	var cl interface{ Close() }
	cl, h.adm, err = newAdmin(h.broker.addr)
	if err != nil {
		return err
	}
	defer cl.Close()

	fmt.Fprintf(os.Stderr, "compare: generating %d events …\n", n)
	data := generate(n, 1)
	if !h.step(ctx, "produce", h.stepTimeout, func(ctx context.Context) error {
		if err := resetTopics(ctx, h.adm, 6); err != nil {
			return err
		}
		b, err := produce(ctx, h.broker.addr, schemas.TopicRaw, data.keys, data.values)
		h.res.PayloadBytes = b
		return err
	}) {
		return fmt.Errorf("the raw topic could not be filled")
	}

	if !skip["raw"] {
		h.step(ctx, "raw ceiling", h.stepTimeout, func(ctx context.Context) (err error) {
			h.res.RawCeiling, err = rawCeiling(ctx, h.broker.addr, n)
			return err
		})
	}
	if !skip["peer"] {
		h.res.PeerConsumers, h.res.PeerFormat = consumers, "TabSeparated, one String column per record, row delimiter '\\n', visitParamExtract* in the views"
		for _, store := range []bool{false, true} {
			name := map[bool]string{false: "peer sums only", true: "peer sums + events"}[store]
			h.step(ctx, name, h.stepTimeout, func(ctx context.Context) error {
				db := h.database(map[bool]string{false: "peer_sums", true: "peer"}[store])
				if err := h.conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
					return err
				}
				group := db
				// A new group of the Kafka engine starts at the latest
				// offset; committing the start first makes it read it all
				// without changing the shared server's configuration.
				if err := commitToStart(ctx, h.adm, group, schemas.TopicRaw); err != nil {
					return err
				}
				rate, sustained, missing, extra, err := peerCH(ctx, h.conn, db, h.broker.addr, group, consumers, n, store)
				if store {
					h.res.Peer, h.res.PeerSustained, h.res.PeerMissing, h.res.PeerExtra = rate, sustained, missing, extra
				} else {
					h.res.PeerSums, h.res.PeerSumsSustained, h.res.PeerSumsMissing, h.res.PeerSumsExtra = rate, sustained, missing, extra
				}
				if missing > 0 {
					h.warn("%s: ClickHouse's Kafka engine stopped %d records short of %d; its rate is taken at its last progress", name, missing, n)
				}
				if extra > 0 {
					h.warn("%s: ClickHouse's Kafka engine counted %d of the %d events twice (it delivers at least once); its rate is taken at its last progress", name, extra, n)
				}
				return err
			})
		}
	}
	if !skip["naive"] {
		h.step(ctx, "naive", h.stepTimeout, func(ctx context.Context) error {
			db := h.database("naive")
			if err := h.conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
				return err
			}
			var err error
			h.res.Naive, err = naive(ctx, h.conn, db, h.broker.addr, n)
			return err
		})
	}
	if !skip["e2e"] {
		h.step(ctx, "e2e", h.stepTimeout+time.Minute, func(ctx context.Context) error {
			profiles := ""
			if h.profileSeconds > 0 {
				profiles = resultsDir
			}
			r, err := h.e2e(ctx, "e2e", n, 6, 1, profiles)
			h.res.E2E, h.res.E2ESustained, h.res.E2EDetail = r.EventsPerS, r.SustainedEventsPerS, &r
			return err
		})
	}
	// The same run with the enriched topic as protobuf, on the same raw
	// records written again to new topics (a step of its own, so that the
	// step's CPU is the pipeline's).
	if !skip["e2e-protobuf"] && h.step(ctx, "produce again", h.stepTimeout, func(ctx context.Context) error {
		if err := resetTopics(ctx, h.adm, 6, "aivis-enrich", "aivis-aggregate"); err != nil {
			return err
		}
		_, err := produce(ctx, h.broker.addr, schemas.TopicRaw, data.keys, data.values)
		return err
	}) {
		h.step(ctx, "e2e protobuf", h.stepTimeout+time.Minute, func(ctx context.Context) error {
			r, err := h.e2e(ctx, "e2e_protobuf", n, 6, 1, "", "AIVIS_ENRICH__OUTPUT_FORMAT=protobuf")
			h.res.E2EProtobuf, h.res.E2EProtobufSustained, h.res.E2EProtobufDetail = r.EventsPerS, r.SustainedEventsPerS, &r
			return err
		})
	}
	if !skip["ingest"] {
		h.step(ctx, "ingest http", h.stepTimeout, func(ctx context.Context) error {
			if err := resetTopics(ctx, h.adm, 6); err != nil {
				return err
			}
			profiles := ""
			if h.profileSeconds > 0 {
				profiles = resultsDir
			}
			pts, err := h.ingestHTTP(ctx, data, []ingestLoad{{1, 8}, {100, 8}, {500, 1}, {500, 2}, {500, 4}, {500, 8}}, profiles)
			h.res.IngestBySize = pts
			// The headline is the fastest 500-event point whose p99 is
			// under 50 ms, or the fastest one when none is.
			var best, bestUnder *ingestPoint
			for i := range pts {
				p := &pts[i]
				if p.BatchEvents != 500 {
					continue
				}
				if best == nil || p.EventsPerS > best.EventsPerS {
					best = p
				}
				if p.P99Ms < 50 && (bestUnder == nil || p.EventsPerS > bestUnder.EventsPerS) {
					bestUnder = p
				}
			}
			if bestUnder != nil {
				best = bestUnder
			}
			if best != nil {
				h.res.IngestHTTP, h.res.IngestP99Ms, h.res.IngestClients = best.EventsPerS, best.P99Ms, best.Clients
			}
			return err
		})
	}
	if !skip["latency"] {
		h.step(ctx, "latency", latencyFor+5*time.Minute, func(ctx context.Context) error {
			if err := resetTopics(ctx, h.adm, 6, "aivis-enrich", "aivis-aggregate"); err != nil {
				return err
			}
			// Half the rate the pipeline sustains once running (see
			// progress); the whole step's rate when that is unknown.
			rate := h.res.E2ESustained / 2
			if rate <= 0 {
				rate = h.res.E2E / 2
			}
			if h.latencyRate > 0 {
				rate = h.latencyRate
			} else if rate <= 0 {
				rate = 2000
				h.warn("no e2e rate measured: latency runs at %v events/s", rate)
			}
			r, err := h.latency(ctx, data, rate, latencyFor)
			h.res.Latency, h.res.LatencyP50, h.res.LatencyP99 = &r, r.P50S, r.P99S
			return err
		})
	}
	if !skip["rss"] {
		h.step(ctx, "aggregator rss 100k keys", h.stepTimeout, func(ctx context.Context) error {
			if err := resetTopics(ctx, h.adm, 6, "aivis-enrich", "aivis-aggregate"); err != nil {
				return err
			}
			var err error
			if h.res.AggRSS100k, err = h.aggregatorRSS(ctx, data, 100_000, "rss100k", nil); err != nil {
				return err
			}
			// Again as a deployment in a 1 GiB container would run it: a
			// soft limit at 75% of the container (memory_limit_mib).
			if err := resetTopics(ctx, h.adm, 6, "aivis-enrich", "aivis-aggregate"); err != nil {
				return err
			}
			h.res.AggRSS100kLimited, err = h.aggregatorRSS(ctx, data, 100_000, "rss100k_limited", []string{"AIVIS_MEMORY_LIMIT_MIB=768"})
			return err
		})
	}
	if !skip["scaling"] {
		scaleData := generate(scaleN, 2)
		point := func(ctx context.Context, name string, d dataset, partitions int32, replicas int) (scalePoint, error) {
			if err := resetTopics(ctx, h.adm, partitions, "aivis-enrich", "aivis-aggregate"); err != nil {
				return scalePoint{}, err
			}
			if _, err := produce(ctx, h.broker.addr, schemas.TopicRaw, d.keys, d.values); err != nil {
				return scalePoint{}, err
			}
			r, err := h.e2e(ctx, name, len(d.values), partitions, replicas, "")
			return scaleOf(r, len(d.values)), err
		}
		// About 10, 1,000 and 100,000 (model, team, project) keys.
		for _, teams := range []int{1, 100, 20_000} {
			h.step(ctx, fmt.Sprint("scaling teams=", teams), h.stepTimeout, func(ctx context.Context) error {
				d, err := withTeams(scaleData, teams)
				if err != nil {
					return err
				}
				p, err := point(ctx, fmt.Sprint("keys", teams), d, 6, 1)
				p.Param = teams
				h.res.Scaling.Keys = append(h.res.Scaling.Keys, p)
				return err
			})
		}
		for _, parts := range []int32{1, 3, 6, 12} {
			h.step(ctx, fmt.Sprint("scaling partitions=", parts), h.stepTimeout, func(ctx context.Context) error {
				p, err := point(ctx, fmt.Sprint("parts", parts), scaleData, parts, 1)
				p.Param = int(parts)
				h.res.Scaling.Partitions = append(h.res.Scaling.Partitions, p)
				return err
			})
		}
		for _, reps := range []int{1, 2, 3} {
			h.step(ctx, fmt.Sprint("scaling replicas=", reps), h.stepTimeout, func(ctx context.Context) error {
				p, err := point(ctx, fmt.Sprint("reps", reps), scaleData, 6, reps)
				p.Param = reps
				h.res.Scaling.Replicas = append(h.res.Scaling.Replicas, p)
				return err
			})
		}
	}
	return nil
}

// cleanup stops every process, drops the run's databases and stops the
// private broker.
func (h *harness) cleanup() {
	stopAll()
	if h.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, db := range h.databases {
			if err := h.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
				h.warn("dropping database %s: %v", db, err)
			}
		}
		cancel()
	}
	if err := h.broker.down(); err != nil {
		h.warn("stopping the private broker: %v", err)
	}
}

// microRuns is how many times each per-core benchmark runs. A busy
// neighbour on a shared machine slows some runs and not others; the median
// is the figure, and every run is kept in the results.
const microRuns = 5

// pgoProfile is the profile go build applies to bin/aivis (the main
// package's default.pgo, `make pgo`). The per-core benchmarks are built
// with it too, so that they measure the code the binary runs; the runs
// without it are kept beside them.
const pgoProfile = "cmd/aivis/default.pgo"

// micro runs the per-stage benchmarks on one core and converts them.
func (h *harness) micro(ctx context.Context) error {
	pgo := "off"
	if _, err := os.Stat(pgoProfile); err == nil {
		pgo = pgoProfile
	}
	samples, err := h.microSamples(ctx, pgo)
	if err != nil {
		return err
	}
	h.res.MicroSamples, h.res.MicroPGO = samples, pgo
	if pgo != "off" {
		if h.res.MicroSamplesNoPGO, err = h.microSamples(ctx, "off"); err != nil {
			return err
		}
	}
	h.res.EnrichCore, h.res.EnrichBench = 1e9/median(samples[enrichBench]), enrichBench
	h.res.EnrichCoreMixed = 1e9 / median(samples[enrichMixedBench])
	h.res.AggregateCore = 1e9 / median(samples[aggregateBench])
	return nil
}

// The per-core benchmarks, as micro_ns_per_event_samples names them.
const (
	enrichBench      = "enrich.BenchmarkDecodeEnrich/decoder"
	enrichMixedBench = "enrich.BenchmarkDecodeEnrich/decoder-mixed"
	aggregateBench   = "aggregate.BenchmarkAddBatch"
)

// microSamples runs each per-core benchmark microRuns times, built with
// the profile pgo (a path, or "off"), and returns the ns an event of
// every run by benchmark.
func (h *harness) microSamples(ctx context.Context, pgo string) (map[string][]float64, error) {
	// bench runs pattern microRuns times and returns, per "Name unit", the
	// value of each run.
	bench := func(pkg, pattern string) (map[string][]float64, error) {
		cmd := exec.CommandContext(ctx, "go", "test", "-pgo", pgo, "-count", fmt.Sprint(microRuns), "-run", "^$", "-bench", pattern, "-cpu", "1", "-benchtime", "1s", pkg)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go test -pgo %s -bench %s %s: %w\n%s", pgo, pattern, pkg, err, out)
		}
		return parseBench(string(out)), nil
	}
	samples := map[string][]float64{}
	// decode + HideSecrets + enrich + encode of one raw record, as the
	// stage does it (the "decoder" case; "encoding-json" is the old path).
	r, err := bench("./enrich/", "^BenchmarkDecodeEnrich$/^decoder(-mixed)?$")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{enrichBench, enrichMixedBench} {
		if ns := r[strings.TrimPrefix(name, "enrich.")+" ns/op"]; median(ns) > 0 {
			samples[name] = ns
		} else {
			return nil, fmt.Errorf("no ns/op from %s (-pgo %s) in %v", name, pgo, r)
		}
	}
	agg, err := bench("./aggregate/", "^BenchmarkAddBatch$")
	if err != nil {
		return nil, err
	}
	// One op is a poll of 10,000 events; the benchmark also reports ns/event.
	perEvent := agg["BenchmarkAddBatch ns/event"]
	if len(perEvent) == 0 {
		for _, v := range agg["BenchmarkAddBatch ns/op"] {
			perEvent = append(perEvent, v/10_000)
		}
	}
	if median(perEvent) <= 0 {
		return nil, fmt.Errorf("no result from %s (-pgo %s)", aggregateBench, pgo)
	}
	samples[aggregateBench] = perEvent
	return samples, nil
}

// median is the middle of vs (the mean of the two middle ones for an even
// count), or 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

var benchLine = regexp.MustCompile(`^(Benchmark\S*?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parseBench maps "Name unit" to its values, one from each benchmark line
// of that name in order.
func parseBench(out string) map[string][]float64 {
	m := map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		g := benchLine.FindStringSubmatch(sc.Text())
		if g == nil {
			continue
		}
		f := strings.Fields(g[2])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[g[1]+" "+f[i+1]] = append(m[g[1]+" "+f[i+1]], v)
			}
		}
	}
	return m
}

func ratios(r result) map[string]float64 {
	m := map[string]float64{}
	div := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			m[name] = a / b
		}
	}
	div("e2e_over_peer", r.E2E, r.Peer)
	div("e2e_over_peer_sums_only", r.E2E, r.PeerSums)
	div("e2e_over_peer_sustained", r.E2ESustained, r.PeerSustained)
	div("e2e_over_peer_sums_only_sustained", r.E2ESustained, r.PeerSumsSustained)
	div("e2e_over_naive", r.E2E, r.Naive)
	div("e2e_protobuf_over_peer", r.E2EProtobuf, r.Peer)
	div("e2e_protobuf_over_e2e", r.E2EProtobuf, r.E2E)
	div("e2e_over_raw_ceiling", r.E2E, r.RawCeiling)
	// Machine CPU per event, the peer's over aivis's: above 1 when aivis
	// costs the machine less per event.
	div("peer_over_e2e_machine_cpu_per_event", r.StepCPU["peer sums + events"].MachineCPUUsPerEvent, r.StepCPU["e2e"].MachineCPUUsPerEvent)
	return m
}

func machine(ctx context.Context, chAddr string, b *broker) map[string]string {
	m := map[string]string{
		"cores":      strconv.Itoa(runtime.NumCPU()),
		"go_version": runtime.Version(),
		"date":       time.Now().UTC().Format(time.RFC3339),
		"kafka":      kafkaVersion(),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				m["model_name"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(sc.Text(), "MemTotal:")), " ")
		}
		f.Close()
	}
	if conn, err := connectCH(ctx, chAddr, "default"); err == nil {
		var v string
		if conn.QueryRow(ctx, "SELECT version()").Scan(&v) == nil {
			m["clickhouse"] = v
		}
		conn.Close()
	}
	return m
}

// kafkaVersion reads the broker's version from its jar name.
func kafkaVersion() string {
	out, err := exec.Command("deploy/scripts/kafka.sh", "classpath").Output()
	if err != nil {
		return "unknown"
	}
	if g := regexp.MustCompile(`kafka_2\.13-([0-9.]+)\.jar`).FindSubmatch(out); g != nil {
		return string(g[1])
	}
	return "unknown"
}

func table(r result) string {
	var b strings.Builder
	num := func(v float64) string {
		if v == 0 {
			return "—"
		}
		return groupDigits(int64(v + 0.5))
	}
	fmt.Fprintf(&b, "\n%d events, %s payload bytes, %d partitions; %s cores (%s), %s\n\n",
		r.Events, groupDigits(r.PayloadBytes), r.Partitions, r.Machine["cores"], r.Machine["model_name"], r.Machine["date"])
	fmt.Fprintln(&b, "| Path | events/s | vs aivis e2e | sustained events/s (10–90 % done) | vs aivis, sustained |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|")
	row := func(name string, v, sustained float64) {
		ratio, sratio := "—", "—"
		if v > 0 && r.E2E > 0 {
			ratio = fmt.Sprintf("%.2f", r.E2E/v)
		}
		if sustained > 0 && r.E2ESustained > 0 {
			sratio = fmt.Sprintf("%.2f", r.E2ESustained/sustained)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, num(v), ratio, num(sustained), sratio)
	}
	row("raw ceiling: franz-go group consumer, discard", r.RawCeiling, 0)
	uncounted := func(missing, extra int) string {
		switch {
		case missing > 0:
			return fmt.Sprintf(" (left %d records uncounted; rate at its last progress)", missing)
		case extra > 0:
			return fmt.Sprintf(" (counted %d events twice; rate at its last progress)", extra)
		}
		return ""
	}
	row(fmt.Sprintf("ClickHouse Kafka engine, sums only (%d consumers)%s", r.PeerConsumers, uncounted(r.PeerSumsMissing, r.PeerSumsExtra)), r.PeerSums, r.PeerSumsSustained)
	row("ClickHouse Kafka engine, sums + every event stored"+uncounted(r.PeerMissing, r.PeerExtra), r.Peer, r.PeerSustained)
	row("naive Go: encoding/json, map, row-by-row batches", r.Naive, 0)
	row("**aivis** enrich + aggregate processes", r.E2E, r.E2ESustained)
	if r.E2EProtobuf > 0 {
		row("**aivis**, the enriched topic as protobuf (`enrich.output_format`)", r.E2EProtobuf, r.E2EProtobufSustained)
	}
	if len(r.StepCPU) > 0 {
		fmt.Fprintln(&b, "\n| Path (whole step) | machine CPU µs/event | Kafka broker µs/event | of which JIT · GC | ClickHouse server µs/event | rest µs/event |")
		fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|")
		for _, name := range []string{"raw ceiling", "peer sums only", "peer sums + events", "naive", "e2e", "e2e protobuf"} {
			c, ok := r.StepCPU[name]
			if !ok || c.Events == 0 {
				continue
			}
			per := func(sec float64) string { return fmt.Sprintf("%.1f", sec/float64(c.Events)*1e6) }
			fmt.Fprintf(&b, "| %s | %s | %s | %s · %s | %s | %s |\n", name, per(c.MachineCPUSeconds), per(c.BrokerCPUSeconds),
				per(c.BrokerJITSeconds), per(c.BrokerGCSeconds), per(c.ClickHouseSeconds),
				per(c.MachineCPUSeconds-c.BrokerCPUSeconds-c.ClickHouseSeconds))
		}
	}
	fmt.Fprintln(&b, "\n| Other | value |")
	fmt.Fprintln(&b, "|---|---:|")
	fmt.Fprintf(&b, "| ingest HTTP, 500 events/request, %d clients (fastest with p99 < 50 ms): events/s | %s |\n", r.IngestClients, num(r.IngestHTTP))
	fmt.Fprintf(&b, "| ingest HTTP, 500 events/request, %d clients: p99 ms | %.1f |\n", r.IngestClients, r.IngestP99Ms)
	for _, p := range r.IngestBySize {
		fmt.Fprintf(&b, "| ingest HTTP, %d events/request, %d clients: events/s · p50 · p99 ms · ingest CPU µs/event | %s · %.1f · %.1f · %.1f |\n", p.BatchEvents, p.Clients, num(p.EventsPerS), p.P50Ms, p.P99Ms, p.IngestCPUUsPerEvent)
	}
	built := "without a profile"
	if r.MicroPGO != "" && r.MicroPGO != "off" {
		built = "built with " + r.MicroPGO + " as bin/aivis is"
	}
	fmt.Fprintf(&b, "| enrich, one core (%s, median of %d runs, %s): events/s | %s |\n", r.EnrichBench, microRuns, built, num(r.EnrichCore))
	fmt.Fprintf(&b, "| enrich, one core, a mixed stream (%s, as above): events/s | %s |\n", enrichMixedBench, num(r.EnrichCoreMixed))
	fmt.Fprintf(&b, "| aggregate, one core (BenchmarkAddBatch, median of %d runs, %s): events/s | %s |\n", microRuns, built, num(r.AggregateCore))
	if ns := r.MicroSamplesNoPGO; ns != nil {
		fmt.Fprintf(&b, "| the same without the profile: enrich · enrich, mixed · aggregate events/s | %s · %s · %s |\n",
			num(1e9/median(ns[enrichBench])), num(1e9/median(ns[enrichMixedBench])), num(1e9/median(ns[aggregateBench])))
	}
	if r.Latency != nil {
		l := r.Latency
		fmt.Fprintf(&b, "| e2e latency p50 · p99 s (window %gs + wait %gs: out_of_order %gs + allowed_lateness %gs; goal p99 ≤ %gs; %s events/s) | %.1f · %.1f |\n",
			l.WindowS, l.WaitS, l.OutOfOrderS, l.AllowedLatenessS, l.BoundS, num(l.RateEventsPerS), r.LatencyP50, r.LatencyP99)
		fmt.Fprintf(&b, "| pipeline delay past window end + wait, p50 · p99 s | %.1f · %.1f |\n", l.PipelineP50S, l.PipelineP99S)
	}
	fmt.Fprintf(&b, "| aggregator peak RSS, 100k keys in open windows | %s MiB |\n", num(float64(r.AggRSS100k)/(1<<20)))
	fmt.Fprintf(&b, "| the same with memory_limit_mib=768 (a 1 GiB container) | %s MiB |\n", num(float64(r.AggRSS100kLimited)/(1<<20)))
	if d := r.E2EDetail; d != nil {
		for _, name := range []string{"enrich", "aggregate-0"} {
			if u, ok := d.Processes[name]; ok {
				fmt.Fprintf(&b, "| e2e %s: CPU s · peak RSS MiB | %.1f · %s |\n", name, u.CPUSeconds, num(float64(u.PeakRSSBytes)/(1<<20)))
			}
		}
	}
	curve := func(title string, pts []scalePoint) {
		if len(pts) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n| %s | distinct keys | window rows | events/s | enrich · aggregate CPU µs/event | aggregator peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|\n", title)
		for _, p := range pts {
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %.1f · %.1f | %s |\n", p.Param, p.DistinctKeys, groupDigits(int64(p.WindowRows)), num(p.EventsPerS),
				p.EnrichCPUUsPerEvent, p.AggregateCPUUsPerEvent, num(float64(p.AggregatorRSS)/(1<<20)))
		}
	}
	curve("teams", r.Scaling.Keys)
	curve("partitions", r.Scaling.Partitions)
	curve("aggregate replicas", r.Scaling.Replicas)
	if len(r.Errors) > 0 {
		fmt.Fprintln(&b, "\nFailed steps:")
		for k, v := range r.Errors {
			fmt.Fprintf(&b, "- %s: %s\n", k, firstLine(v))
		}
	}
	return b.String()
}

func groupDigits(v int64) string {
	s := strconv.FormatInt(v, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	stopAll()
	os.Exit(1)
}
