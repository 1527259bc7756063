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

// MaxDeadLetterBytes bounds a dead letter's value, key and headers
// together, well under the 1,000,012 bytes of a Kafka client's batch and
// Kafka's default max.message.bytes, so that writing the dead letter of any
// record succeeds and its partition moves on. The original is base64 in the
// value (4 bytes for every 3), so originals of more than about 560 KiB are
// cut to fit.
const MaxDeadLetterBytes = 768 << 10

// maxHeaderBytes bounds the original headers a dead letter keeps.
const maxHeaderBytes = 64 << 10

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
// a bounded detail, under in's key and with in's headers, at most
// MaxDeadLetterBytes in all (see schemas.DeadLetter for what is cut). It
// does not count it: call Count once the record is acknowledged.
func (d *DeadLetters) Record(in *kgo.Record, reason, detail string) *kgo.Record {
	return d.record(in, "", reason, detail, MaxDeadLetterBytes)
}

// RecordEvent is Record for a record that decoded to the event eventID:
// the dead letter names it, so that it can be found without decoding the
// original (which may be cut).
func (d *DeadLetters) RecordEvent(in *kgo.Record, eventID, reason, detail string) *kgo.Record {
	return d.record(in, eventID, reason, detail, MaxDeadLetterBytes)
}

// Bare returns the dead letter of in without the original's bytes and
// headers, a few KiB at most: for a dead-letter topic whose
// max.message.bytes refused the one Record made. The dead letter still
// names the topic, partition and offset where the original is, and the
// event id when there is one.
func (d *DeadLetters) Bare(in *kgo.Record, eventID, reason, detail string) *kgo.Record {
	return d.record(in, eventID, reason, detail+bareNote, 0)
}

// bareNote ends the detail of a bare dead letter.
const bareNote = "; the original's bytes and headers are left out, as the dead-letter topic refused them for their size"

func (d *DeadLetters) record(in *kgo.Record, eventID, reason, detail string, limit int) *kgo.Record {
	if limit == 0 && len(detail) > maxDetailBytes {
		// Keep the note that says why the original is missing.
		detail = detail[:maxDetailBytes-len(bareNote)] + bareNote
	}
	if len(detail) > maxDetailBytes {
		detail = detail[:maxDetailBytes]
	}
	dl := schemas.DeadLetter{
		Stage:         d.stage,
		Reason:        reason,
		Detail:        detail,
		Topic:         in.Topic,
		Partition:     in.Partition,
		Offset:        in.Offset,
		EventID:       eventID,
		Original:      in.Value,
		OriginalBytes: len(in.Value),
		At:            d.now().UTC(),
	}
	// The original headers travel with it (a producer's trace context or
	// content type), as copies: in's memory belongs to its fetch. Those
	// named like credentials carry their APIKeyID, as everywhere.
	var headers []kgo.RecordHeader
	size := HeaderBytes(in.Headers)
	if size > maxHeaderBytes || (limit == 0 && len(in.Headers) > 0) {
		dl.HeadersDropped, size = len(in.Headers), 0
	} else if len(in.Headers) > 0 {
		hs := HideHeaderSecrets(in.Headers)
		headers = make([]kgo.RecordHeader, len(hs))
		for i, h := range hs {
			headers[i] = kgo.RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)}
		}
	}
	// A key is an event id or another short identifier; one long enough to
	// matter is left out rather than cut.
	key := in.Key
	if len(key) > maxDetailBytes {
		key = nil
	}
	size += len(key)
	// Only an original of more than half the room can make the value too
	// large: base64 makes 4 bytes of 3, and the other fields are small.
	if room := limit - size; 2*len(in.Value) > room {
		// Measured as if cut: the flag saying so takes room too.
		dl.Original, dl.OriginalTruncated = nil, true
		empty, err := json.Marshal(dl)
		dl.Original, dl.OriginalTruncated = in.Value, false
		// "original":null becomes "original":"<base64>": 2 quotes for the
		// 4 bytes of null, 4 bytes for every 3 of the original.
		if n := max(3*((room-(len(empty)-2))/4), 0); err == nil && n < len(in.Value) {
			dl.Original, dl.OriginalTruncated = in.Value[:n], true
		}
	}
	value, err := json.Marshal(dl)
	if err != nil {
		// A DeadLetter of plain fields always encodes; keep the original
		// bytes reachable regardless.
		value = bytes.Clone(dl.Original)
	}
	return &kgo.Record{Topic: schemas.TopicDeadLetter, Key: bytes.Clone(key), Value: value, Headers: headers}
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
