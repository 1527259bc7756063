package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/schemas"
)

// Sink makes the aggregator's output durable. Write must return nil only
// once every event and row is stored; rows are idempotent by key, so a
// retried Write is safe. Emitted and SeenIDs read back what a partition
// already stored so that a replay skips it (see Engine.Assign); SeenIDs
// streams the ids, stored below restartOffset with event time since
// `since`, to fn. StoredIDs answers which of ids the sink stores for the
// partition with event time in [from, to], to confirm the suspects of the
// compact dedup tiers (see Engine.Suspects).
type Sink interface {
	Write(ctx context.Context, events []schemas.StoredEvent, rows []schemas.WindowRow) error
	Emitted(ctx context.Context, partition int32, since time.Time) (map[int64]int64, error)
	SeenIDs(ctx context.Context, partition int32, restartOffset int64, since time.Time, fn func(id string, at time.Time)) (int, error)
	StoredIDs(ctx context.Context, partition int32, ids []string, from, to time.Time) (map[string]bool, error)
}

// Stage consumes the enriched topic as one replica of the aggregator group.
// It dials its own group member (its rebalance callbacks are bound when the
// client is made) and closes it when Run returns, which leaves the group.
type Stage struct {
	cfg     Config
	topic   string
	cl      *kgo.Client
	sink    Sink
	engine  *Engine
	log     *slog.Logger
	now     func() time.Time
	metrics *stageMetrics
	spend   *spendMetrics
	dead    *bus.DeadLetters

	evictions int64 // engine evictions already counted
	// shortLogged is when the dedup horizon held was last logged short.
	shortLogged time.Time
	dedupShort  error

	processed atomic.Int64

	// dec decodes the records process reads, one at a time (under mu).
	// It skips the cost lines: nothing here reads them, and neither
	// usage_events nor the windows store them.
	dec schemas.Decoder
	// free holds events the engine no longer refers to (written by the
	// sink, or not accepted), for dec to decode the next records into: a
	// reused event keeps its labels map and usage.
	free []*schemas.Enriched

	// member confirms before each write that the replica still owns its
	// partitions (nil: no group, in tests).
	member *membership
	// fencedSince is when a write was last refused for want of
	// membership, zero once one is written or the partitions are lost.
	fencedSince time.Time

	mu        sync.Mutex
	epochs    map[int32]int32
	assigned  map[int32]bool
	lastFlush time.Time
	sinkErr   error
	lastOK    time.Time
}

// NewStage makes the engine and dials the consumer-group member of
// cfg.Group on cfg.Topic; metrics go to reg.
func NewStage(cfg Config, d bus.Dialer, sink Sink, reg prometheus.Registerer, log *slog.Logger) (*Stage, error) {
	s := &Stage{
		cfg:      cfg,
		topic:    cfg.Topic,
		sink:     sink,
		engine:   NewEngine(cfg),
		log:      log,
		now:      time.Now,
		metrics:  newStageMetrics(reg),
		spend:    newSpendMetrics(reg),
		dead:     bus.NewDeadLetters(StageName, reg),
		epochs:   map[int32]int32{},
		assigned: map[int32]bool{},
	}
	s.dec.SkipCostLines = true
	s.dec.LabelsAsJSON = true // stored, never looked up
	opts := []kgo.Opt{
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.FetchMaxBytes(fetchMaxBytes),
		bus.Pooled(new(bus.FetchPool)),
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	// The member exists before the client does: the client joins the group
	// at once, and onAssigned may run before Consumer returns.
	s.member = &membership{group: cfg.Group, session: cfg.SessionTimeout, now: time.Now}
	if cfg.InstanceID != "" {
		s.member.instanceID = &cfg.InstanceID
	}
	cl, err := d.Consumer(StageName, cfg.Group, cfg.Topic, opts...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cl = cl
	s.member.cl = cl
	s.mu.Unlock()
	return s, nil
}

// fetchMaxBytes bounds one fetch response from a broker. The client holds
// the response, decompressed, until every record of it is polled, and
// fetches the next one meanwhile; with franz-go's default (50 MiB, 1 MiB a
// partition) six partitions of snappy-compressed enriched JSON held 40-50
// MB of decompressed records, while a poll takes 10,000 records (10-15
// MB). 2 MiB compressed is about a poll's worth.
const fetchMaxBytes = 2 << 20

// StageName is the stage recorded in dead letters and logs.
const StageName = "aggregate"

// Ready fails while the sink is failing or nothing has been flushed for a
// long time although records are pending.
func (s *Stage) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sinkErr != nil {
		return fmt.Errorf("sink failing since %s: %w", s.lastOK.Format(time.RFC3339), s.sinkErr)
	}
	return s.dedupShort
}

// Run consumes until ctx is done, then emits every open window, commits
// and leaves the group. Stop order: stop polling → final bounded flush →
// commit → close the client.
func (s *Stage) Run(ctx context.Context) error {
	defer s.engine.Close()
	defer s.metrics.lag.Reset() // a stopped replica holds no partition
	s.lastFlush = s.now()
	started := s.now()
	idleChecked := false
	var outcomes []Outcome
	for ctx.Err() == nil {
		if !idleChecked && s.now().Sub(started) > 2*s.cfg.SessionTimeout {
			idleChecked = true
			s.warnIfIdle(ctx)
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.FlushInterval)
		fetches := s.cl.PollRecords(pctx, s.cfg.PollRecords)
		cancel()
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetching enriched records", "topic", t, "partition", p, "err", err)
			}
		})
		s.mu.Lock()
		err := s.process(ctx, fetches, &outcomes)
		// The events are decoded into memory of their own and the dead
		// letters produced: the records' memory can go back to the pool.
		fetches.EachRecord((*kgo.Record).Recycle)
		if err == nil && (s.now().Sub(s.lastFlush) >= s.cfg.FlushInterval || s.engine.Stats().PendingEvents >= s.cfg.MaxPendingEvents) {
			err = s.flushLocked(ctx, false)
		}
		fenced := errors.Is(err, errFenced)
		if fenced {
			err = s.fencedLocked(err)
		}
		s.mu.Unlock()
		s.cl.AllowRebalance()
		if err != nil && ctx.Err() == nil {
			s.cl.Close()
			return err
		}
		if fenced {
			// The client finds out too, drops the partitions
			// (onLost) and rejoins; polling on meanwhile would only
			// pile up records it then discards.
			sleep(ctx, s.cfg.FlushInterval)
		}
	}
	// Final flush with a bound of its own: the run context is already done.
	fctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s.mu.Lock()
	err := s.flushLocked(fctx, true)
	s.mu.Unlock()
	if errors.Is(err, errFenced) {
		// Nothing of it may be written or committed: the partitions'
		// new owners count it.
		s.log.Warn("stopping without writing the open windows", "err", err)
		s.cl.Close()
		return nil
	}
	if err == nil {
		err = s.commitAtShutdown(fctx)
	}
	s.cl.Close()
	return err
}

// fencedLocked handles a flush refused because the replica no longer owns
// its partitions: their new owners re-read what it holds, so it keeps it
// unwritten until the client notices and drops the partitions (onLost).
// It gives up, ending Run, if that does not happen within twice the
// session timeout plus the rebalance timeout. Caller holds s.mu.
func (s *Stage) fencedLocked(err error) error {
	now := s.now()
	s.metrics.fenced.Inc()
	s.lastFlush = now
	if s.fencedSince.IsZero() {
		s.fencedSince = now
		s.log.Warn("not writing a flush: the group has given this replica's partitions to another member, which counts their events again; waiting for the client to drop them and rejoin",
			"err", err)
	}
	if limit := 2*s.cfg.SessionTimeout + rebalanceTimeout; now.Sub(s.fencedSince) > limit {
		return fmt.Errorf("the client has not rejoined group %s within %s of losing its partitions; exiting so that a restart rejoins: %w", s.cfg.Group, limit, err)
	}
	return nil
}

// protobufRecord reports whether an enriched record holds the protobuf
// form (enrich.output_format: protobuf), by its content-type header; a
// record without one is JSON.
func protobufRecord(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if len(h.Key) == len(schemas.HeaderContentType) && strings.EqualFold(h.Key, schemas.HeaderContentType) {
			return schemas.IsProtobuf(h.Value)
		}
	}
	return false
}

func (s *Stage) process(ctx context.Context, fetches kgo.Fetches, outcomes *[]Outcome) error {
	var dead []deadLetter
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || len(fp.Records) == 0 {
			return
		}
		p := fp.Partition
		s.processed.Add(int64(len(fp.Records)))
		inputs := make([]Input, 0, len(fp.Records))
		recs := make([]*kgo.Record, 0, len(fp.Records))
		var earliest time.Time
		protobufs := 0
		for _, r := range fp.Records {
			// Each event gets its own value: the engine keeps it until
			// the sink has written it.
			ev := s.event()
			var derr error
			if protobufRecord(r) {
				protobufs++
				derr = s.dec.EnrichedProto(r.Value, ev)
			} else {
				derr = s.dec.Enriched(r.Value, ev)
			}
			if derr == nil && (ev.EventID == "" || ev.Time.IsZero()) {
				derr = errors.New("enriched event lacks event_id or time")
			}
			if derr != nil {
				s.metrics.events.WithLabelValues("invalid").Inc()
				dead = append(dead, s.deadLetter(r, "", schemas.ReasonInvalidSchema, derr.Error()))
				s.recycle(ev)
				continue
			}
			inputs = append(inputs, Input{Offset: r.Offset, Event: ev})
			recs = append(recs, r)
			if earliest.IsZero() || ev.Time.Before(earliest) {
				earliest = ev.Time
			}
		}
		s.metrics.formProtobuf.Add(float64(protobufs))
		s.metrics.formJSON.Add(float64(len(fp.Records) - protobufs))
		if !s.engine.Owns(p) {
			if err = s.assign(ctx, p, fp.Records[0].Offset, earliest); err != nil {
				return
			}
		}
		if err = s.confirmSuspects(ctx, p, inputs); err != nil {
			return
		}
		wm := s.engine.Watermark(p)
		now := s.now()
		*outcomes = s.engine.AddBatch(p, inputs, now, *outcomes)
		// Counted per poll, not per event: a labelled counter's lookup
		// costs about as much as aggregating the event.
		var tally [Future + 1]int
		for i, o := range *outcomes {
			tally[o]++
			switch o {
			case TooLate:
				dead = append(dead, s.deadLetter(recs[i], inputs[i].Event.EventID, schemas.ReasonTooLate,
					fmt.Sprintf("event time %s is more than %s behind the partition watermark %s",
						inputs[i].Event.Time.Format(time.RFC3339), s.cfg.LateHorizon, wm.Format(time.RFC3339))))
			case Future:
				dead = append(dead, s.deadLetter(recs[i], inputs[i].Event.EventID, schemas.ReasonFuture,
					fmt.Sprintf("event time %s is more than %s (aggregate.max_future) ahead of the aggregator clock %s; counting it would have made the current events of partition %d too late",
						inputs[i].Event.Time.Format(time.RFC3339), s.cfg.MaxFuture, now.UTC().Format(time.RFC3339), p)))
			case Accepted:
				if !wm.IsZero() {
					if behind := wm.Sub(inputs[i].Event.Time); behind > 0 {
						s.metrics.lateness.Observe(behind.Seconds())
					}
				}
			}
			if o != Accepted {
				s.recycle(inputs[i].Event)
			}
		}
		for o, n := range tally {
			if n > 0 {
				s.metrics.events.WithLabelValues(Outcome(o).String()).Add(float64(n))
			}
		}
		last := fp.Records[len(fp.Records)-1]
		s.epochs[p] = last.LeaderEpoch
		if fp.HighWatermark > 0 {
			s.metrics.lag.WithLabelValues(strconv.Itoa(int(p))).Set(float64(fp.HighWatermark - last.Offset - 1))
		}
	})
	if err != nil {
		return err
	}
	// Dead letters must be acknowledged before their offsets can be
	// committed; retry until the broker takes them.
	for attempt := 0; len(dead) > 0; attempt++ {
		var perr error
		if dead, perr = s.produceDead(ctx, dead); perr == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("producing dead letters", "records", len(dead), "err", perr)
		sleep(ctx, backoff(attempt))
	}
	st := s.engine.Stats()
	s.metrics.openWindows.Set(float64(st.OpenWindows))
	s.metrics.pending.Set(float64(st.PendingEvents))
	s.metrics.dedupEntries.Set(float64(st.DedupEntries))
	s.metrics.dedupBytes.Set(float64(st.DedupBytes))
	s.metrics.dedupEvictions.Add(float64(st.DedupEvictions - s.evictions))
	s.evictions = st.DedupEvictions
	s.reportDedupHorizon(st)
	return nil
}

// dedupShortLogEvery is how often a dedup horizon held short is logged.
const dedupShortLogEvery = time.Minute

// reportDedupHorizon publishes the dedup horizon held and, while it is
// shorter than aggregate.dedup_horizon, logs an error once a minute and
// makes the stage not ready: a duplicate older than the horizon held is
// counted twice.
func (s *Stage) reportDedupHorizon(st Stats) {
	s.metrics.dedupHeld.Set(st.DedupHeld.Seconds())
	if !st.DedupShort {
		if s.dedupShort != nil {
			s.log.Info("dedup horizon held again", "horizon", s.cfg.DedupHorizon)
		}
		s.dedupShort = nil
		return
	}
	s.dedupShort = fmt.Errorf("dedup state holds only %s of the %s aggregate.dedup_horizon on partition %d within aggregate.dedup_memory_mib %d (%d ids, %.1f MiB): a duplicate older than that is counted twice; raise aggregate.dedup_memory_mib and the memory limit, or shorten aggregate.dedup_horizon",
		st.DedupHeld.Truncate(time.Second), s.cfg.DedupHorizon, st.ShortPartition, s.cfg.DedupMemoryMiB, st.DedupEntries, float64(st.DedupBytes)/(1<<20))
	if now := s.now(); now.Sub(s.shortLogged) >= dedupShortLogEvery {
		s.shortLogged = now
		s.log.Error("dedup horizon not held", "held", st.DedupHeld.Truncate(time.Second), "horizon", s.cfg.DedupHorizon,
			"partition", st.ShortPartition, "dedup_memory_mib", s.cfg.DedupMemoryMiB, "ids", st.DedupEntries,
			"evicted_ids", st.DedupEvictions, "err", s.dedupShort)
	}
}

// confirmSuspects asks the sink which ids that only the compact dedup
// tiers may hold it stores, retrying until it answers: guessing either way
// would drop or double-count money.
func (s *Stage) confirmSuspects(ctx context.Context, p int32, in []Input) error {
	ids, from, to := s.engine.Suspects(p, in)
	if len(ids) == 0 {
		return nil
	}
	s.metrics.dedupSuspects.Add(float64(len(ids)))
	for attempt := 0; ; attempt++ {
		stored, err := s.sink.StoredIDs(ctx, p, ids, from, to)
		if err == nil {
			s.engine.Resolve(p, stored)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.setSinkErr(err)
		s.log.Warn("confirming possible duplicates with the sink; retrying", "partition", p, "ids", len(ids), "err", err)
		sleep(ctx, backoff(attempt))
	}
}

// assign loads what the sink holds for partition p. Every event the engine
// can still accept lies at most OutOfOrder + max(LateHorizon, DedupHorizon)
// before the first record's time, so history older than that is not needed.
func (s *Stage) assign(ctx context.Context, p int32, firstOffset int64, firstTime time.Time) error {
	if firstTime.IsZero() {
		firstTime = s.now()
	}
	since := firstTime.Add(-s.cfg.OutOfOrder - max(s.cfg.LateHorizon, s.cfg.DedupHorizon) - s.cfg.Window)
	for attempt := 0; ; attempt++ {
		start := s.now()
		emitted, err := s.sink.Emitted(ctx, p, since)
		if err == nil {
			s.engine.Assign(p, schemas.PartitionHistory{Emitted: emitted}, start)
			var n int
			n, err = s.sink.SeenIDs(ctx, p, firstOffset, since, func(id string, at time.Time) { s.engine.Remember(p, id, at) })
			if err != nil {
				s.engine.Drop(p)
			}
			if err == nil {
				st := s.engine.Stats()
				s.log.Info("partition state loaded", "partition", p, "from_offset", firstOffset,
					"emitted_windows", len(emitted), "known_event_ids", n, "took", s.now().Sub(start).Round(time.Millisecond),
					"dedup_ids", st.DedupEntries, "dedup_mib", st.DedupBytes>>20)
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.setSinkErr(err)
		s.log.Warn("reading partition history from the sink; retrying", "partition", p, "err", err)
		sleep(ctx, backoff(attempt))
	}
}

// deadLetter is the dead letter of one record, with what made it.
type deadLetter struct {
	in                      *kgo.Record
	eventID, reason, detail string
	out                     *kgo.Record
}

// deadLetter returns the dead letter of r, which decoded to eventID ("":
// it did not decode); produceDead counts it once written.
func (s *Stage) deadLetter(r *kgo.Record, eventID, reason, detail string) deadLetter {
	return deadLetter{in: r, eventID: eventID, reason: reason, detail: detail, out: s.dead.RecordEvent(r, eventID, reason, detail)}
}

// produceDead writes dead letters and returns those not written, with the
// first error. One refused for its size is sent again alone, as a broker
// refuses a whole batch for one record over the topic's max.message.bytes;
// refused alone too (a dead-letter topic whose limit is under
// bus.MaxDeadLetterBytes), it is replaced by one without the original's
// bytes, so that it cannot hold the partition back.
func (s *Stage) produceDead(ctx context.Context, dead []deadLetter) ([]deadLetter, error) {
	outs := make([]*kgo.Record, len(dead))
	byOut := make(map[*kgo.Record]int, len(dead))
	for i, d := range dead {
		outs[i] = d.out
		byOut[d.out] = i
	}
	var rest []deadLetter
	var first error
	for _, pr := range s.cl.ProduceSync(ctx, outs...) {
		d := dead[byOut[pr.Record]]
		if pr.Err == nil {
			s.dead.Count(d.reason)
			continue
		}
		err := pr.Err
		if bus.TooLarge(err) {
			if err = s.cl.ProduceSync(ctx, d.out).FirstErr(); err == nil {
				s.dead.Count(d.reason)
				continue
			}
			if bus.TooLarge(err) {
				s.log.Warn("the dead-letter topic refused a dead letter for its size; writing it without the original's bytes",
					"topic", d.in.Topic, "partition", d.in.Partition, "offset", d.in.Offset, "err", err)
				d.out = s.dead.Bare(d.in, d.eventID, d.reason, d.detail)
			}
		}
		if first == nil {
			first = err
		}
		rest = append(rest, d)
	}
	return rest, first
}

// flushLocked writes what is ready, retrying until the sink takes it
// (backpressure: nothing is polled meanwhile), then marks the new commit
// offsets; many windows closing at once go in several flushes (see
// maxFlushRows). Caller holds s.mu.
func (s *Stage) flushLocked(ctx context.Context, all bool) error {
	start := s.now()
	for {
		f := s.engine.Flush(start, all)
		if err := s.write(ctx, f); err != nil {
			return err
		}
		if !f.More {
			return nil
		}
	}
}

// write makes one flush durable, retrying until the sink takes it, and
// applies it.
func (s *Stage) write(ctx context.Context, f *Flush) error {
	start := s.now()
	if !f.Empty() {
		for attempt := 0; ; attempt++ {
			err := s.writeOnce(ctx, f)
			if err == nil {
				break
			}
			if errors.Is(err, errFenced) {
				return err
			}
			s.setSinkErr(err)
			if ctx.Err() != nil {
				return fmt.Errorf("flushing %d events and %d window rows: %w", len(f.Events), len(f.Rows), err)
			}
			if errors.Is(err, errUnconfirmed) {
				s.log.Warn("holding a flush until the group coordinator confirms this replica still owns its partitions", "events", len(f.Events), "rows", len(f.Rows), "attempt", attempt+1, "err", err)
			} else {
				s.metrics.flushFailures.Inc()
				s.log.Warn("writing to the sink failed; holding offsets and retrying", "events", len(f.Events), "rows", len(f.Rows), "attempt", attempt+1, "err", err)
			}
			sleep(ctx, backoff(attempt))
		}
		s.fencedSince = time.Time{}
		s.metrics.flushSeconds.Observe(s.now().Sub(start).Seconds())
		s.metrics.rows.Add(float64(len(f.Rows)))
		s.spend.observe(f.Events)
	}
	s.sinkErr = nil
	s.lastOK = s.now()
	for _, ev := range f.Events {
		s.recycle(ev.Event)
	}
	s.engine.Ack(f)
	s.lastFlush = s.now()
	s.markCommits(s.engine.Partitions())
	return nil
}

// writeOnce confirms that the replica still owns its partitions and makes
// one attempt at writing f, which must land before the group could have
// given them away.
func (s *Stage) writeOnce(ctx context.Context, f *Flush) error {
	if s.member == nil {
		return s.sink.Write(ctx, f.Events, f.Rows)
	}
	until, err := s.member.confirm(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	return s.sink.Write(wctx, f.Events, f.Rows)
}

// event returns an event to decode into, reused when one is free.
func (s *Stage) event() *schemas.Enriched {
	if n := len(s.free); n > 0 {
		ev := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return ev
	}
	return new(schemas.Enriched)
}

// recycle takes back an event nothing refers to any more.
func (s *Stage) recycle(ev *schemas.Enriched) {
	if len(s.free) < s.cfg.MaxPendingEvents { // one flush's worth
		s.free = append(s.free, ev)
	}
}

func (s *Stage) markCommits(parts []int32) {
	marks := map[int32]kgo.EpochOffset{}
	for _, p := range parts {
		if off, ok := s.engine.CommitOffset(p); ok {
			marks[p] = kgo.EpochOffset{Epoch: s.epochs[p], Offset: off}
		}
	}
	if len(marks) > 0 {
		s.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{s.topic: marks})
	}
}

func (s *Stage) setSinkErr(err error) {
	if s.sinkErr == nil {
		s.lastOK = s.now()
	}
	s.sinkErr = err
}

// onRevoked flushes what is closed, commits the low-water offsets of the
// revoked partitions and forgets them; the next owner replays the rest.
func (s *Stage) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := revoked[s.topic]
	if len(parts) == 0 {
		return
	}
	if err := s.flushLocked(ctx, false); err != nil {
		s.log.Warn("flushing before giving partitions away", "err", err)
	}
	s.markCommits(parts)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Warn("committing offsets of revoked partitions", "partitions", parts, "err", err)
	}
	for _, p := range parts {
		s.forget(p)
	}
	s.log.Info("partitions revoked", "partitions", parts)
}

// onLost drops state without committing: another member owns them now.
func (s *Stage) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range lost[s.topic] {
		s.forget(p)
	}
	s.fencedSince = time.Time{}
	s.log.Warn("partitions lost", "partitions", lost[s.topic])
}

// forget drops what the replica knows of a partition it no longer holds,
// its lag included: the next owner exports that.
func (s *Stage) forget(p int32) {
	s.engine.Drop(p)
	delete(s.epochs, p)
	delete(s.assigned, p)
	s.metrics.lag.DeleteLabelValues(strconv.Itoa(int(p)))
}

func backoff(attempt int) time.Duration { return bus.Backoff(attempt, 10*time.Second) }

func sleep(ctx context.Context, d time.Duration) { bus.Sleep(ctx, d) }

// commitAtShutdown commits the marked offsets, retrying a few times with
// fresh metadata: a broker may briefly answer with stale topic metadata
// (UNKNOWN_TOPIC_ID after a topic was recreated, a leader moving). The
// windows are already in the sink, so a commit that still fails costs only
// a replay that the history read-back skips.
func (s *Stage) commitAtShutdown(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = s.cl.CommitMarkedOffsets(ctx); err == nil {
			return nil
		}
		s.log.Warn("committing offsets at shutdown; retrying", "attempt", attempt+1, "err", err)
		s.cl.ForceMetadataRefresh()
		if !bus.Sleep(ctx, bus.Backoff(attempt+2, 2*time.Second)) {
			break
		}
	}
	return fmt.Errorf("committing offsets at shutdown (the windows are stored; a restart replays and skips them): %w", err)
}

// warnIfIdle reports at start a replica that the group gave no partition
// because it has more members than the topic has partitions.
func (s *Stage) warnIfIdle(ctx context.Context) {
	if len(s.Assigned()) > 0 {
		return
	}
	adm := kadm.NewClient(s.cl)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	topics, terr := adm.ListTopics(cctx, s.topic)
	groups, gerr := adm.DescribeGroups(cctx, s.cfg.Group)
	if terr != nil || gerr != nil {
		return
	}
	partitions := len(topics[s.topic].Partitions)
	members := len(groups[s.cfg.Group].Members)
	if members > partitions {
		s.log.Warn("this replica has no partitions to aggregate: the group has more replicas than the topic has partitions, so the extra ones idle; add partitions (kafka-topics.sh --alter) or run fewer replicas",
			"topic", s.topic, "partitions", partitions, "group", s.cfg.Group, "replicas", members)
	}
}

// Positions returns the last processed offset of each owned partition.
func (s *Stage) Positions() map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32]int64{}
	for _, p := range s.engine.Partitions() {
		out[p] = s.engine.parts[p].position
	}
	return out
}

// Processed is the number of records this replica has consumed.
func (s *Stage) Processed() int64 { return s.processed.Load() }

// onAssigned records ownership; partition state itself is loaded lazily
// with the first records, when the restart offset is known.
func (s *Stage) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range assigned[s.topic] {
		s.assigned[p] = true
	}
	if s.member != nil {
		// The group was stable when it sent the assignment: a rebalance
		// begins after that (within the confirmation's margin of now).
		s.member.stableAt = s.now()
	}
	s.log.Info("partitions assigned", "partitions", assigned[s.topic])
}

// Assigned returns the partitions the group has given this replica.
func (s *Stage) Assigned() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int32, 0, len(s.assigned))
	for p := range s.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
