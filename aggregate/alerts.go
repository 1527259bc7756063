package aggregate

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// AlertSink publishes anomalies to whoever subscribes. Publish returns
// once they are delivered; the scorer treats a failure as advisory.
type AlertSink interface {
	Publish(ctx context.Context, alerts []schemas.Alert) error
}

// KafkaAlerts publishes alerts to a Kafka topic (aivis.alerts.v1), keyed by
// alert id, waiting for acknowledgement from all in-sync replicas.
type KafkaAlerts struct {
	Client *kgo.Client
	Topic  string
}

// Publish produces the alerts and waits for the broker.
func (k KafkaAlerts) Publish(ctx context.Context, alerts []schemas.Alert) error {
	recs := make([]*kgo.Record, 0, len(alerts))
	for _, a := range alerts {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encoding alert %s: %w", a.AlertID, err)
		}
		recs = append(recs, &kgo.Record{Topic: k.Topic, Key: []byte(a.AlertID), Value: b})
	}
	if err := k.Client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publishing %d alerts to %s: %w", len(alerts), k.Topic, err)
	}
	return nil
}
