// Package verify checks aivis's promise from the source: over an event-time
// range, every event id the raw topic holds is counted in ClickHouse, is a
// duplicate of one that is, or sits in the dead-letter topic with a reason.
// It reads the raw and dead-letter topics directly (no consumer group, no
// commits), accounts for each record in a Ledger, asks a Store which ids it
// counts, and returns a Report naming every record that is none of these.
//
// The range applies to event time, as ClickHouse stores it; Kafka
// timestamps only bound the scan: the raw topic is read from the first
// record with a timestamp at or after From − Margin up to the first at or
// after To + Margin. An event produced more than Margin after the end of the
// range (or before its start) is not seen; records inside the scan whose
// event time falls outside the range are counted as outside and not
// checked. Dead letters are written after their raw record, sometimes much
// later (aggregate's too_late), so the dead-letter topic is read from
// From − Margin to its current end.
package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/progress"
	"github.com/aivis-dev/aivis/schemas"
)

// Store answers which event ids ClickHouse counts.
type Store interface {
	// StoredEventIDs returns those of ids that the events table holds on a
	// day (UTC) from firstDay through lastDay; the days only narrow the
	// search. It may block on the database; ids is not kept.
	StoredEventIDs(ctx context.Context, ids []string, firstDay, lastDay time.Time) ([]string, error)
}

// Options say what Check reads.
type Options struct {
	// From and To bound the event time, [From, To).
	From, To time.Time
	// Progress, when set, hears how far the scan and the lookups are.
	Progress *progress.Meter
	// Margin widens the Kafka-timestamp bounds of the scan on both sides.
	Margin time.Duration
	// RawTopic and DeadLetterTopic default to the aivis topics.
	RawTopic, DeadLetterTopic string
	// MaxEvents bounds the records each topic's scan may cover (0: no
	// bound), so that memory stays bounded; see Ledger.
	MaxEvents int
	// Batch is how many ids one store query looks up (default 100 000).
	Batch int
}

func (o *Options) defaults() {
	if o.RawTopic == "" {
		o.RawTopic = schemas.TopicRaw
	}
	if o.DeadLetterTopic == "" {
		o.DeadLetterTopic = schemas.TopicDeadLetter
	}
	if o.Batch <= 0 {
		o.Batch = 100_000
	}
}

// ScanFrom and ScanTo are the Kafka-timestamp bounds of the raw scan.
func (o Options) ScanFrom() time.Time { return o.From.Add(-o.Margin) }

// ScanTo is the upper Kafka-timestamp bound of the raw scan, exclusive.
func (o Options) ScanTo() time.Time { return o.To.Add(o.Margin) }

// Report is what Check found and what it read to find it.
type Report struct {
	Options
	Result
}

// OK says whether every checked record is accounted for.
func (r *Report) OK() bool { return len(r.Missing) == 0 }

// TooManyEventsError says that a scan would hold more records than
// Options.MaxEvents.
type TooManyEventsError struct {
	Topic    string
	Records  int64
	Max      int
	From, To time.Time
}

func (e *TooManyEventsError) Error() string {
	to := "its end"
	if !e.To.IsZero() {
		to = e.To.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s holds up to %d records with Kafka timestamps from %s to %s, more than the limit of %d events per check; narrow the range or raise the limit (memory grows by about 150 bytes per event id)",
		e.Topic, e.Records, e.From.Format(time.RFC3339), to, e.Max)
}

// Check reads the dead-letter topic and the raw topic through d, accounts
// for every raw record in the range, and looks the event ids up in store.
func Check(ctx context.Context, d bus.Dialer, store Store, o Options) (*Report, error) {
	o.defaults()
	if !o.From.Before(o.To) {
		return nil, fmt.Errorf("checking the raw topic: the range %s .. %s is empty", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	adm, err := d.Admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	// The raw bounds first: a dead letter is written after its record, so
	// the dead-letter end listed afterwards covers every record the raw
	// span holds that enrich had handled by then.
	raw, err := listSpan(ctx, adm, o.RawTopic, o.ScanFrom(), o.ScanTo())
	if err != nil {
		return nil, err
	}
	dead, err := listSpan(ctx, adm, o.DeadLetterTopic, o.ScanFrom(), time.Time{})
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		topic string
		sp    span
		to    time.Time
	}{{o.RawTopic, raw, o.ScanTo()}, {o.DeadLetterTopic, dead, time.Time{}}} {
		if n := c.sp.records(); o.MaxEvents > 0 && n > int64(o.MaxEvents) {
			return nil, &TooManyEventsError{Topic: c.topic, Records: n, Max: o.MaxEvents, From: o.ScanFrom(), To: c.to}
		}
	}

	l := NewLedger(o.RawTopic, o.From, o.To, o.MaxEvents)
	p := o.Progress
	p.Phase("reading "+o.DeadLetterTopic, "records", dead.records())
	if err := scan(ctx, d, o.DeadLetterTopic, dead, func(r *kgo.Record) error {
		p.Add(1)
		l.AddDeadLetter(r.Value)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the dead-letter topic: %w", err)
	}
	p.Phase("reading "+o.RawTopic, "records", raw.records())
	if err := scan(ctx, d, o.RawTopic, raw, func(r *kgo.Record) error {
		p.Add(1)
		return l.AddRaw(r.Partition, r.Offset, r.Timestamp, r.Value)
	}); err != nil {
		var tooMany *TooManyIDsError
		if errors.As(err, &tooMany) {
			return nil, &TooManyEventsError{Topic: o.RawTopic, Records: raw.records(), Max: o.MaxEvents, From: o.ScanFrom(), To: o.ScanTo()}
		}
		return nil, fmt.Errorf("reading the raw topic: %w", err)
	}
	// Events are stored by their own time; the margin on the days only
	// makes room for a duplicate whose copies carry different times.
	firstDay, lastDay := o.ScanFrom().UTC().Truncate(24*time.Hour), o.ScanTo().UTC()
	p.Phase("looking up event ids in ClickHouse", "ids", 0)
	if err := l.EachID(o.Batch, func(ids []string) error {
		found, err := store.StoredEventIDs(ctx, ids, firstDay, lastDay)
		if err != nil {
			return fmt.Errorf("looking up %d event ids in ClickHouse: %w", len(ids), err)
		}
		p.Add(int64(len(ids)))
		l.MarkCounted(found)
		return nil
	}); err != nil {
		return nil, err
	}
	return &Report{Options: o, Result: l.Result()}, nil
}
