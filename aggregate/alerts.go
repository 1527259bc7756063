package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
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

// alertFor turns an anomalous score into the alert subscribers see.
func alertFor(sc schemas.Score, window time.Duration, now time.Time) schemas.Alert {
	usd := func(picos float64) string {
		return decimal.NewFromFloat(picos).Shift(-12).Round(6).String()
	}
	return schemas.Alert{
		AlertID: schemas.AlertCostAnomaly + ":" + strconv.FormatInt(sc.WindowStart.Unix(), 10) + ":" + sc.Team + ":" + sc.Model,
		Kind:    schemas.AlertCostAnomaly, WindowStart: sc.WindowStart, WindowEnd: sc.WindowStart.Add(window),
		Team: sc.Team, Model: sc.Model,
		CostUSD:     decimal.NewFromBigInt(sc.CostPicos.Big(), -12).String(),
		BaselineUSD: usd(sc.BaselinePicos), StddevUSD: usd(sc.StddevPicos),
		ZScore: sc.Z, Observations: sc.Observations, DetectedAt: now.UTC(),
	}
}
