package bus

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/internal/obs"
	"github.com/aivis-dev/aivis/schemas"
)

// maxDetailBytes bounds the error text stored in a dead letter.
const maxDetailBytes = 1024

// DeadLetters builds the records of aivis.deadletter.v1 and counts them.
// Every stage that rejects a record it consumed uses one, so the record
// shape and the metric are the same everywhere.
type DeadLetters struct {
	stage   string
	counter *prometheus.CounterVec
	now     func() time.Time
}

// NewDeadLetters returns the dead-letter builder of stage, counting on
// aivis_deadletter_total in reg (shared by the stages of one process).
func NewDeadLetters(stage string, reg prometheus.Registerer) *DeadLetters {
	return &DeadLetters{stage: stage, counter: DeadLetterCounter(reg), now: time.Now}
}

// Record returns the dead letter of in: the original bytes, the reason and
// a bounded detail, under in's key and with in's headers. It does not count it: call Count once
// the record is acknowledged.
func (d *DeadLetters) Record(in *kgo.Record, reason, detail string) *kgo.Record {
	if len(detail) > maxDetailBytes {
		detail = detail[:maxDetailBytes]
	}
	value, err := json.Marshal(schemas.DeadLetter{
		Stage:     d.stage,
		Reason:    reason,
		Detail:    detail,
		Topic:     in.Topic,
		Partition: in.Partition,
		Offset:    in.Offset,
		Original:  bytes.Clone(in.Value),
		At:        d.now().UTC(),
	})
	if err != nil {
		// A DeadLetter of plain fields always encodes; keep the original
		// bytes reachable regardless.
		value = bytes.Clone(in.Value)
	}
	// The original headers travel with it (a producer's trace context or
	// content type), as copies: in's memory belongs to its fetch.
	var headers []kgo.RecordHeader
	if len(in.Headers) > 0 {
		headers = make([]kgo.RecordHeader, len(in.Headers))
		for i, h := range in.Headers {
			headers[i] = kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)}
		}
	}
	return &kgo.Record{Topic: schemas.TopicDeadLetter, Key: bytes.Clone(in.Key), Value: value, Headers: headers}
}

// Count records one dead letter of reason.
func (d *DeadLetters) Count(reason string) { d.counter.WithLabelValues(d.stage, reason).Inc() }

// DeadLetterCounter returns aivis_deadletter_total registered on reg, or
// the one already registered there by another stage of the process.
func DeadLetterCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	return obs.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aivis_deadletter_total",
		Help: "Records sent to aivis.deadletter.v1, by stage and reason.",
	}, []string{"stage", "reason"}))
}
