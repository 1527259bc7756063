package enrich

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/pricing"
	"github.com/aivis-dev/aivis/schemas"
)

// ConsumerGroup is the consumer group of every enrich replica.
const ConsumerGroup = "aivis-enrich"

// StageName is the stage recorded in dead letters and metrics.
const StageName = "enrich"

const (
	defaultMaxPollRecords = 1000
	// drainTimeout bounds how long a stopping stage waits for the output
	// of its last batch to be acknowledged.
	drainTimeout = 10 * time.Second
)

// Dial returns a fresh consumer of the raw topic in ConsumerGroup, with
// the stage's options added (its group callbacks); see
// bus.Dialer.Consumer for the options the stage relies on.
type Dial func(opts ...kgo.Opt) (*kgo.Client, error)

// DialWith returns the Dial of the enrich stage for d.
func DialWith(d bus.Dialer) Dial {
	pool := new(bus.FetchPool)
	return func(opts ...kgo.Opt) (*kgo.Client, error) {
		return d.Consumer(StageName, ConsumerGroup, schemas.TopicRaw, append([]kgo.Opt{bus.Pooled(pool)}, opts...)...)
	}
}

// Stage consumes raw events, enriches them and produces the results. Each
// Run dials its own consumer and closes it on return, so that a Run after a
// failed one resumes from the committed offsets as a fresh group member.
// Rules (catalog, owners, contracts) are shared across runs and swapped by
// Reload and Watch.
type Stage struct {
	dial     Dial
	client   *kgo.Client
	enricher atomic.Pointer[Enricher]
	log      *slog.Logger
	metrics  *metrics
	dead     *bus.DeadLetters
	maxPoll  int
	protobuf bool // enrich.output_format: protobuf
	// group holds the consumer's group options from the config
	// (session timeout, static membership).
	group []kgo.Opt
	now   func() time.Time
	drain time.Duration

	reloadMu sync.Mutex
	fileSums [3][sha256.Size]byte

	// failed is why the last run stopped, until a batch goes through again.
	failed atomic.Pointer[error]
	// policy adds policy flags and bounds attribution labels (package
	// governance); nil leaves events as they are.
	policy Policy

	// transform's scratch: process runs it for one record at a time.
	dec schemas.Decoder
	out schemas.Enriched
	enc schemas.Encoder
	// owners keeps the owners of recent events by their labels and key.
	owners ownerMemo
	// Outputs are carved from shared blocks rather than allocated one by
	// one. A block is not written again while a record in it may be in
	// flight: the blocks a batch filled are reused only once process has
	// seen every output of the batch acknowledged or failed (reuse).
	values     []byte
	records    []kgo.Record
	fullValues [][]byte       // value blocks filled in this batch
	fullRecs   [][]kgo.Record // record blocks filled in this batch
	freeValues [][]byte       // value blocks free for the next ones
	freeRecs   [][]kgo.Record
	// process's per-batch slices, kept for the next batch.
	results []result
	// refused are the outputs of the batch being produced that the client
	// refused as too large, with their index (see resendTooLarge).
	refusedMu sync.Mutex
	refused   []refused
	marks     []*kgo.Record
}

// outCtx is the context of one output of a batch: the batch's, and the
// index of the output's input, so that one promise serves every output
// of the batch (a closure per output was an allocation per record). The
// client may hold a record's context after its promise (a goroutine
// waiting for an unknown topic does), so a batch's contexts are never
// written again: each batch makes its own.
type outCtx struct {
	context.Context
	i int
}

// Block sizes of Stage.values and Stage.records.
const (
	valueBlock  = 256 << 10
	recordBlock = 256
)

// ownRoom is the room transform keeps for what enrich adds to a record
// (owner, pricing with its cost lines, flags), over the input's length:
// about 750 bytes with five cost lines.
const ownRoom = 4 << 10

// carve returns a copy of b in the current value block.
func carve[T ~string | ~[]byte](s *Stage, b T) []byte {
	s.valueRoom(len(b))
	n := len(s.values)
	s.values = append(s.values, b...)
	return s.values[n : n+len(b) : n+len(b)]
}

// valueRoom makes the current value block one with at least n bytes
// free.
func (s *Stage) valueRoom(n int) {
	if cap(s.values)-len(s.values) >= n {
		return
	}
	if cap(s.values) == valueBlock {
		s.fullValues = append(s.fullValues, s.values)
	}
	if k := len(s.freeValues); k > 0 && n <= valueBlock {
		s.values, s.freeValues = s.freeValues[k-1][:0], s.freeValues[:k-1]
	} else {
		s.values = make([]byte, 0, max(valueBlock, n))
	}
}

// appendValue runs encode on the current value block and returns what it
// appended, which stays in the block; room is what encode is expected to
// append at most. Encoding in place saves copying each output from a
// scratch buffer. An output longer than room, which made encode take new
// memory, is carved from there.
func (s *Stage) appendValue(room int, encode func([]byte) []byte) []byte {
	s.valueRoom(room)
	n := len(s.values)
	out := encode(s.values)
	if unsafe.SliceData(out) != unsafe.SliceData(s.values) {
		return carve(s, out[n:])
	}
	s.values = out
	return out[n:len(out):len(out)]
}

// record returns a fresh record from the current record block.
func (s *Stage) record() *kgo.Record {
	if len(s.records) == cap(s.records) {
		if s.records != nil {
			s.fullRecs = append(s.fullRecs, s.records)
		}
		if k := len(s.freeRecs); k > 0 {
			s.records, s.freeRecs = s.freeRecs[k-1][:0], s.freeRecs[:k-1]
		} else {
			s.records = make([]kgo.Record, 0, recordBlock)
		}
	}
	s.records = s.records[:len(s.records)+1]
	return &s.records[len(s.records)-1]
}

// reuse makes every block free again. Only for when no output record is
// in flight: process calls it once the client has answered for all the
// outputs of a batch.
func (s *Stage) reuse() {
	s.freeValues = append(s.freeValues, s.fullValues...)
	s.fullValues = s.fullValues[:0]
	s.values = s.values[:0]
	for _, b := range s.fullRecs {
		clear(b[:cap(b)]) // no hold on the inputs' memory
	}
	clear(s.records[:cap(s.records)])
	s.freeRecs = append(s.freeRecs, s.fullRecs...)
	s.fullRecs = s.fullRecs[:0]
	s.records = s.records[:0]
}

// Ready fails from a failed run until the next batch is produced and
// committed.
func (s *Stage) Ready() error {
	if err := s.failed.Load(); err != nil {
		return *err
	}
	return nil
}

// NewStage loads the rules cfg names and returns the stage; its metrics
// are registered on reg.
func NewStage(cfg Config, dial Dial, reg prometheus.Registerer, log *slog.Logger) (*Stage, error) {
	e, err := Load(cfg)
	if err != nil {
		return nil, err
	}
	s := newStage(dial, e, reg, log)
	s.protobuf = cfg.OutputFormat == FormatProtobuf
	if cfg.SessionTimeout > 0 {
		s.group = append(s.group, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.InstanceID != "" {
		s.group = append(s.group, kgo.InstanceID(cfg.InstanceID))
	}
	return s, nil
}

func newStage(dial Dial, e *Enricher, reg prometheus.Registerer, log *slog.Logger) *Stage {
	if log == nil {
		log = slog.Default()
	}
	s := &Stage{dial: dial, log: log.With("stage", StageName), metrics: newMetrics(reg),
		dead: bus.NewDeadLetters(StageName, reg), maxPoll: defaultMaxPollRecords, now: time.Now, drain: drainTimeout}
	s.enricher.Store(e)
	return s
}

// Watcher returns the actor that reloads the rules when cfg's files change.
func (s *Stage) Watcher(cfg Config) *Watcher { return &Watcher{stage: s, cfg: cfg} }

// Watcher reloads a stage's rules when their files change.
type Watcher struct {
	stage *Stage
	cfg   Config
}

// Run watches until ctx is done.
func (w *Watcher) Run(ctx context.Context) error { return w.stage.Watch(ctx, w.cfg) }

// Policy is applied to every enriched event after pricing and ownership:
// it sets the policy flags and may bound the event's attribution labels.
// It must be safe for concurrent use; *governance.Enforcer satisfies it.
type Policy interface {
	Apply(e *schemas.Enriched)
}

// SetPolicy sets the policy applied to every event; call it before Run.
func (s *Stage) SetPolicy(p Policy) { s.policy = p }

// SetEnricher swaps the rules used for the next records.
func (s *Stage) SetEnricher(e *Enricher) { s.enricher.Store(e) }

// Enricher returns the rules in use.
func (s *Stage) Enricher() *Enricher { return s.enricher.Load() }

// Reload re-reads the configured catalog and owners files and swaps them in.
// On any error the previous rules stay in use, the error is logged and
// aivis_enrich_reload_errors_total is raised.
func (s *Stage) Reload(cfg Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reloadLocked(cfg)
}

func (s *Stage) reloadLocked(cfg Config) error {
	e, err := Load(cfg)
	if err != nil {
		s.metrics.reloadErrors.Inc()
		s.log.Error("reloading pricing and ownership rules; keeping the previous ones", "err", err)
		return fmt.Errorf("reloading enrich rules: %w", err)
	}
	e.now = s.Enricher().now
	s.SetEnricher(e)
	s.metrics.reloads.Inc()
	s.log.Info("reloaded pricing and ownership rules", "catalog_version", e.catalog.Version())
	return nil
}

// Watch reloads the rules whenever the content of the configured files
// changes, checking every cfg.ReloadInterval, until ctx is done. With no
// files configured or a zero interval it just waits for ctx.
func (s *Stage) Watch(ctx context.Context, cfg Config) error {
	if cfg.ReloadInterval <= 0 || (cfg.CatalogPath == "" && cfg.OwnersPath == "" && cfg.ContractsPath == "") {
		<-ctx.Done()
		return nil
	}
	s.reloadMu.Lock()
	s.fileSums = fileSums(cfg)
	s.reloadMu.Unlock()
	t := time.NewTicker(cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.reloadMu.Lock()
		sums := fileSums(cfg)
		if sums != s.fileSums {
			// Remember the new content even when it is bad, so that one bad
			// file is reported once, not every tick.
			s.fileSums = sums
			_ = s.reloadLocked(cfg)
		}
		s.reloadMu.Unlock()
	}
}

// fileSums hashes the configured files; an unreadable file hashes as its
// error text, so that it counts as a change and is reported by the reload.
func fileSums(cfg Config) [3][sha256.Size]byte {
	var out [3][sha256.Size]byte
	for i, p := range []string{cfg.CatalogPath, cfg.OwnersPath, cfg.ContractsPath} {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			data = []byte("error: " + err.Error())
		}
		out[i] = sha256.Sum256(data)
	}
	return out
}

// Run consumes until ctx is done. Each polled batch is transformed,
// produced, and only when every output record of a partition was
// acknowledged are that partition's input offsets marked for commit. On
// cancellation it finishes the batch in flight (bounded by a drain timeout),
// commits the marked offsets and returns nil. It returns an error when an
// output record could not be produced; offsets stop before that record, so
// a restart redelivers it. Run must not be called concurrently.
func (s *Stage) Run(ctx context.Context) error {
	cl, err := s.dial(append([]kgo.Opt{kgo.OnPartitionsRevoked(s.forgetLag), kgo.OnPartitionsLost(s.forgetLag)}, s.group...)...)
	if err != nil {
		s.failed.Store(&err)
		return err
	}
	s.client = cl
	format := FormatJSON
	if s.protobuf {
		format = FormatProtobuf
	}
	s.log.Info("writing enriched events", "topic", schemas.TopicEnriched, "format", format)
	// A partition this process no longer holds has no lag here: its next
	// owner exports it.
	defer s.metrics.lag.Reset()
	defer cl.Close()
	defer s.commit(ctx)
	for {
		fetches := s.client.PollRecords(ctx, s.maxPoll)
		if fetches.IsClientClosed() {
			return errors.New("enrich: the Kafka client was closed before the stage stopped; close it after Run returns")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			s.log.Warn("fetching raw events", "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		err := s.process(ctx, recs)
		if err == nil {
			s.recordLag(fetches)
		}
		// Every output of the batch is acknowledged or failed: nothing
		// refers to the inputs' memory any more.
		for _, r := range recs {
			r.Recycle()
		}
		s.client.AllowRebalance()
		if err != nil {
			s.failed.Store(&err)
			return err
		}
		if len(recs) > 0 {
			s.failed.Store(nil)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// recordLag sets the lag of each partition a processed batch came from.
func (s *Stage) recordLag(fetches kgo.Fetches) {
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if n := len(fp.Records); n > 0 && fp.HighWatermark > 0 {
			s.metrics.lag.WithLabelValues(strconv.Itoa(int(fp.Partition))).Set(float64(fp.HighWatermark - fp.Records[n-1].Offset - 1))
		}
	})
}

// forgetLag drops the lag of partitions given away or lost.
func (s *Stage) forgetLag(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	for _, p := range parts[schemas.TopicRaw] {
		s.metrics.lag.DeleteLabelValues(strconv.Itoa(int(p)))
	}
}

func (s *Stage) commit(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.drain)
	defer cancel()
	if err := s.client.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("committing offsets on stop; the records after the last commit will be enriched again", "err", err)
	}
}

type result struct {
	dead   string // dead-letter reason, "" when enriched
	err    error
	priced bool
	prov   string
	reason string // pricing.Unpriced*, when not priced
	owned  bool
	// fallbacks has bit i set when the event carries a warning with code
	// pricing.FallbackCodes[i].
	fallbacks uint32
}

// process produces the outputs of one batch and marks the inputs whose
// outputs were acknowledged.
func (s *Stage) process(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// Outputs of a batch must finish even when ctx is cancelled mid-batch;
	// the drain timeout starts at cancellation.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s.drain, cancel) })
	defer stop()

	e := s.Enricher()
	s.results = slices.Grow(s.results[:0], len(recs))[:len(recs)]
	results := s.results
	var wg sync.WaitGroup
	done := func(out *kgo.Record, err error) {
		i := out.Context.(*outCtx).i
		results[i].err = err
		if bus.TooLarge(err) {
			s.refusedMu.Lock()
			s.refused = append(s.refused, refused{i, out})
			s.refusedMu.Unlock()
		}
		wg.Done()
	}
	ctxs := make([]outCtx, len(recs))
	var at time.Time
	for i, in := range recs {
		// One clock read per stampEvery records: enriched_at is then at
		// most a millisecond or so before the event was enriched.
		if i%stampEvery == 0 {
			at = e.now().UTC()
		}
		out, res := s.transform(e, in, at)
		results[i] = res
		ctxs[i] = outCtx{pctx, i}
		out.Context = &ctxs[i]
		wg.Add(1)
		s.client.Produce(pctx, out, done)
	}
	wg.Wait()
	for _, r := range s.refused {
		s.resendTooLarge(pctx, recs[r.i], r.out, &results[r.i])
	}
	clear(s.refused)
	s.refused = s.refused[:0]
	s.reuse()

	// Mark per partition only the prefix that was acknowledged: marking a
	// later offset would commit past a record whose output was lost.
	type tp struct {
		topic     string
		partition int32
	}
	blocked := map[tp]bool{}
	marks := slices.Grow(s.marks[:0], len(recs))
	defer func() { clear(marks); s.marks = marks[:0] }()
	var firstErr error
	for i, in := range recs {
		key := tp{in.Topic, in.Partition}
		r := results[i]
		if r.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("producing the output of %s[%d]@%d: %w", in.Topic, in.Partition, in.Offset, r.err)
			}
			blocked[key] = true
			continue
		}
		if blocked[key] {
			continue
		}
		marks = append(marks, in)
		s.count(r)
	}
	s.client.MarkCommitRecords(marks...)
	if firstErr != nil {
		return fmt.Errorf("enrich: %w; offsets were committed only up to the last acknowledged record, so a restart redelivers the rest", firstErr)
	}
	return nil
}

func (s *Stage) count(r result) {
	if r.dead != "" {
		s.metrics.events.WithLabelValues("deadlettered").Inc()
		s.dead.Count(r.dead)
		return
	}
	s.metrics.events.WithLabelValues("enriched").Inc()
	if !r.priced {
		s.metrics.unpriced.WithLabelValues(r.prov, r.reason).Inc()
	}
	for i, code := range pricing.FallbackCodes {
		if r.fallbacks&(1<<i) != 0 {
			s.metrics.fallbacks.WithLabelValues(r.prov, code).Inc()
		}
	}
	if !r.owned {
		s.metrics.unowned.Inc()
	}
}

// refused is an output refused for its size, and its input's index.
type refused struct {
	i   int
	out *kgo.Record
}

// resendTooLarge handles an output refused as too large, whose input is in:
// it is sent again alone, since a broker refuses a whole batch for one
// record over the topic's limit. An enriched event refused alone too is
// replaced by in's dead letter as too_large; a dead letter refused alone
// (a dead-letter topic whose max.message.bytes is under
// bus.MaxDeadLetterBytes) by one without the original's bytes. Without this
// a partition would stop at the record for good: every restart would
// enrich it again and be refused again.
func (s *Stage) resendTooLarge(ctx context.Context, in, out *kgo.Record, r *result) {
	alone := &kgo.Record{Topic: out.Topic, Key: out.Key, Value: out.Value, Headers: out.Headers}
	err := s.client.ProduceSync(ctx, alone).FirstErr()
	if !bus.TooLarge(err) {
		r.err = err
		return
	}
	reason, detail, eventID := r.dead, "", ""
	if reason == "" {
		detail = fmt.Sprintf("the enriched event is %d bytes with its key and headers, more than a record of %s may be "+
			"(the Kafka client's batch of 1,000,012 bytes, or the topic's max.message.bytes if lower): %v; it is not counted. "+
			"Send smaller events: trim raw_usage, labels or record headers", len(out.Value)+len(out.Key)+bus.HeaderBytes(out.Headers), out.Topic, err)
		s.log.Warn("dead-lettering a raw record whose enriched event is too large for its topic", "partition", in.Partition, "offset", in.Offset, "bytes", len(out.Value))
		reason = schemas.ReasonTooLarge
		*r = result{dead: reason}
		var ev struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(out.Value, &ev)
		eventID = ev.EventID
		err = s.client.ProduceSync(ctx, s.dead.RecordEvent(in, eventID, reason, detail)).FirstErr()
		if !bus.TooLarge(err) {
			r.err = err
			return
		}
	} else {
		var dl schemas.DeadLetter
		_ = json.Unmarshal(out.Value, &dl)
		detail = dl.Detail
	}
	s.log.Warn("the dead-letter topic refused a dead letter for its size; writing it without the original's bytes", "topic", schemas.TopicDeadLetter,
		"partition", in.Partition, "offset", in.Offset, "err", err)
	r.err = s.client.ProduceSync(ctx, s.dead.Bare(in, eventID, reason, detail)).FirstErr()
}

// stampEvery is how many records of a batch share one enriched_at.
const stampEvery = 256

// protoHeader says a record holds the protobuf form; shared by the records
// whose input had no headers (the client only reads them).
var protoHeader = []kgo.RecordHeader{{Key: schemas.HeaderContentType, Value: []byte(schemas.ContentTypeProtobuf)}}

// protoHeaders returns the input's headers with the protobuf content type
// in place of any the producer sent.
func protoHeaders(in []kgo.RecordHeader) []kgo.RecordHeader {
	if len(in) == 0 {
		return protoHeader
	}
	out := make([]kgo.RecordHeader, 0, len(in)+1)
	for _, h := range in {
		if !strings.EqualFold(h.Key, schemas.HeaderContentType) {
			out = append(out, h)
		}
	}
	return append(out, protoHeader[0])
}

// jsonHeaders returns the input's headers without a content type that
// names the protobuf form, which would make the aggregator read the JSON
// record as protobuf.
func jsonHeaders(in []kgo.RecordHeader) []kgo.RecordHeader {
	for i, h := range in {
		if strings.EqualFold(h.Key, schemas.HeaderContentType) && schemas.IsProtobuf(h.Value) {
			out := append(in[:i:i], in[i+1:]...)
			return jsonHeaders(out)
		}
	}
	return in
}

// transform turns one raw record into its output record: the enriched event
// under the same key, stamped enriched_at at, or a dead letter.
func (s *Stage) transform(e *Enricher, in *kgo.Record, at time.Time) (*kgo.Record, result) {
	// The event is decoded into the enriched value's, which enrichOwned
	// then need not copy.
	ev := &s.out.Event
	// transform is done with the event before in's memory is reused.
	s.dec.EventIDInPlace = true
	s.dec.ReuseLabels = true // only HideSecrets changes ev.Labels
	err := s.dec.Event(in.Value, ev)
	if err == nil {
		err = ev.Validate()
	}
	if err != nil {
		reason := schemas.ReasonInvalidJSON
		var verr *schemas.ValidationError
		if errors.As(err, &verr) {
			reason = schemas.ReasonInvalidSchema
		}
		return s.deadLetter(in, reason, err.Error()), result{dead: reason}
	}
	// Ingest and ingest/client hide credentials before producing; a
	// producer writing the raw topic directly may not have.
	s.dec.HideSecrets(ev)
	enriched := &s.out
	owner, unowned := s.owners.attribute(e.owners, ev, s.dec.LabelsID(ev.Labels))
	q := e.enrichOwned(enriched, ev, at, owner, unowned)
	if s.policy != nil {
		s.policy.Apply(enriched)
	}
	// The client holds the value until the broker acknowledges it: it is
	// written in a block no later record overwrites.
	var value []byte
	if s.protobuf {
		// The labels of a set the decoder keeps come encoded already.
		labels := s.dec.LabelsProto(enriched.Labels)
		value = s.appendValue(len(in.Value)+ownRoom, func(b []byte) []byte { return enriched.AppendProtoLabels(b, labels) })
	} else if start, end, ok := s.dec.CanonicalHead(); ok {
		// Nothing after HideSecrets changes those members.
		head := in.Value[start:end]
		value = s.appendValue(len(in.Value)+ownRoom, func(b []byte) []byte { return enriched.AppendJSONHead(b, head, &s.enc) })
	} else {
		value = s.appendValue(len(in.Value)+ownRoom, enriched.AppendJSON)
	}
	key := in.Key
	if len(key) == 0 {
		// Downstream dedup needs one event_id on one partition.
		key = carve(s, ev.EventID)
	}
	res := result{priced: !enriched.Flags.Unpriced, owned: !enriched.Flags.Unowned}
	if res.priced {
		res.fallbacks = fallbackBits(q.Warnings)
	}
	if !res.priced || res.fallbacks != 0 {
		res.reason = q.UnpricedReason
		res.prov = e.catalog.KnownProvider(ev.Provider)
		if ev.Kind == schemas.KindGPUUsage {
			res.prov = "gpu"
		}
	}
	out := s.record()
	headers := in.Headers
	if len(headers) > 0 {
		headers = bus.HideHeaderSecrets(headers)
	}
	if s.protobuf {
		headers = protoHeaders(headers)
	} else if len(headers) > 0 {
		headers = jsonHeaders(headers)
	}
	*out = kgo.Record{Topic: schemas.TopicEnriched, Key: key, Value: value, Headers: headers}
	return out, res
}

// fallbackBits returns the set of pricing.FallbackCodes among warnings.
func fallbackBits(warnings []string) uint32 {
	var bits uint32
	for _, w := range warnings {
		code := pricing.FallbackCode(w)
		for i, c := range pricing.FallbackCodes {
			if code != "" && c == code {
				bits |= 1 << i
			}
		}
	}
	return bits
}

func (s *Stage) deadLetter(in *kgo.Record, reason, detail string) *kgo.Record {
	s.log.Debug("dead-lettering a raw record", "reason", reason, "partition", in.Partition, "offset", in.Offset, "detail", detail)
	return s.dead.Record(in, reason, detail)
}
