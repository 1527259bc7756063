package loadgen

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// KafkaSink produces items straight to a raw topic, bypassing ingest, keyed
// by event_id so that duplicates land in the same partition as their
// original. Malformed items go too: the stages behind ingest must
// dead-letter them.
type KafkaSink struct {
	Client *kgo.Client
	Topic  string // empty: schemas.TopicRaw
}

// Send produces the batch and waits for every record to be acknowledged.
func (s *KafkaSink) Send(ctx context.Context, items []Item) error {
	if s.Client == nil {
		return errors.New("sending to Kafka: KafkaSink has no client; build one with kgo.NewClient")
	}
	topic := s.Topic
	if topic == "" {
		topic = schemas.TopicRaw
	}
	recs := make([]*kgo.Record, len(items))
	for i, it := range items {
		r := &kgo.Record{Topic: topic, Value: it.Raw}
		if it.Event != nil && it.Event.EventID != "" {
			r.Key = []byte(it.Event.EventID)
		}
		recs[i] = r
	}
	if err := s.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d events to topic %q: %w", len(items), topic, err)
	}
	return nil
}

var _ Sink = (*KafkaSink)(nil)
