package bus

import (
	"context"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// WriteEvents writes events as JSON lines (the raw topic's encoding), for
// producers that run without Kafka. what names the events in errors
// ("GPU usage events").
func WriteEvents(w io.Writer, events []schemas.Event, what string) error {
	var buf []byte
	for i := range events {
		buf = append(events[i].AppendJSON(buf[:0]), '\n')
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("writing %s: %w", what, err)
		}
	}
	return nil
}

// ProduceEvents writes events to the raw topic keyed by event_id, as
// ingest does, and waits until the broker has acknowledged all of them.
// what names the events in errors.
func ProduceEvents(ctx context.Context, cl *kgo.Client, events []schemas.Event, what string) error {
	if len(events) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		recs[i] = &kgo.Record{Topic: schemas.TopicRaw, Key: []byte(events[i].EventID), Value: events[i].AppendJSON(nil)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d %s to %s: %w", len(recs), what, schemas.TopicRaw, err)
	}
	return nil
}
