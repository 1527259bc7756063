package gpuprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// PrintSnapshot writes one JSON line per GPU, for `aivis gpuprobe --once`.
// A disabled probe writes one status line with its reason and no error, so
// the command also succeeds on hosts without a GPU.
func PrintSnapshot(p *Probe, w io.Writer) error {
	enc := json.NewEncoder(w)
	if !p.Enabled() {
		if err := enc.Encode(map[string]any{"enabled": false, "reason": p.DisabledReason()}); err != nil {
			return fmt.Errorf("writing the GPU snapshot: %w", err)
		}
		return nil
	}
	samples, err := p.Snapshot()
	for _, s := range samples {
		if werr := enc.Encode(s); werr != nil {
			return fmt.Errorf("writing the GPU snapshot: %w", werr)
		}
	}
	return err
}

// WriteJSON writes events as JSON lines, for running without Kafka.
func WriteJSON(w io.Writer, events []schemas.Event) error {
	enc := json.NewEncoder(w)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return fmt.Errorf("writing GPU usage events: %w", err)
		}
	}
	return nil
}

// Produce writes events to the raw topic keyed by event_id, as ingest does,
// and waits until the broker has acknowledged all of them.
func Produce(ctx context.Context, cl *kgo.Client, events []schemas.Event) error {
	recs := make([]*kgo.Record, len(events))
	for i := range events {
		value, err := json.Marshal(&events[i])
		if err != nil {
			return fmt.Errorf("encoding GPU usage event %s: %w", events[i].EventID, err)
		}
		recs[i] = &kgo.Record{Topic: schemas.TopicRaw, Key: []byte(events[i].EventID), Value: value}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d GPU usage events to %s: %w", len(recs), schemas.TopicRaw, err)
	}
	return nil
}
