package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

// Ledger accounts for the records of a raw topic over one event-time
// range. It is the pure core of the source check: no Kafka, no ClickHouse.
// Feed it the dead letters first (AddDeadLetter), then the raw records
// (AddRaw), then tell it which of its event ids the store counts
// (EachID, MarkCounted), and read the Result.
//
// Memory: one map entry per distinct event id in the range, about 150 bytes
// for a 36-character id (BenchmarkLedgerAddRaw reports it), one per dead
// letter, and one per record that is missing. Raw records are not kept.
type Ledger struct {
	rawTopic string
	from, to time.Time
	maxIDs   int

	// deadAt holds the reason of every dead letter of a raw-topic record,
	// by the record's partition and offset.
	deadAt map[coord]string
	// deadByID holds the reason of every dead letter from a later stage
	// (aggregate's too_late), by the event id of its original bytes.
	deadByID map[string]string
	// ids holds every distinct event id still to be found in the store;
	// found ones are removed and counted in res.CountedIDs.
	ids     map[string]idState
	reasons map[string]string // interned reason strings

	res Result
}

type coord struct {
	partition int32
	offset    int64
}

// idState is what the ledger keeps per distinct event id: where its first
// record sits and how many records carry it (16 bytes).
type idState struct {
	offset    int64
	partition int32
	records   uint32
}

// Result is what a Ledger found.
type Result struct {
	// Records is every raw record read; OutsideRange of them have an event
	// time outside the range (or, when they have none, a Kafka timestamp
	// outside it) and are not checked. The rest are checked.
	Records, OutsideRange, Checked int
	// IDs is the number of distinct event ids among the checked records
	// that no dead letter names by partition and offset; CountedIDs of them
	// are in ClickHouse.
	IDs, CountedIDs int
	// Duplicates are checked records whose event id an earlier checked
	// record already carried.
	Duplicates int
	// DeadLettered counts the checked records accounted for by a dead
	// letter, by reason (too_late included).
	DeadLettered map[string]int
	// DeadLetters is every dead letter read; UnreadableDeadLetters of them
	// can match no record: not a dead-letter envelope, or one from a later
	// stage whose original bytes carry no event id.
	DeadLetters, UnreadableDeadLetters int
	// Missing are the checked records that are none of the above, one per
	// event id (the first record carrying it) or per record without one.
	Missing []Missing
}

// TooLate is the number of checked records accounted for by a too_late dead
// letter: in Kafka, but not counted in ClickHouse.
func (r Result) TooLate() int { return r.DeadLettered[schemas.ReasonTooLate] }

// Missing is a raw record that is not accounted for.
type Missing struct {
	// EventID is empty when the record does not decode far enough to have one.
	EventID   string
	Partition int32
	Offset    int64
	// Records is how many checked records carry EventID (1 without one).
	Records int
	// Why says what was looked for.
	Why string
}

// NewLedger returns a ledger for the records of rawTopic with an event time
// in [from, to). It holds at most maxIDs distinct event ids (0: no limit).
func NewLedger(rawTopic string, from, to time.Time, maxIDs int) *Ledger {
	return &Ledger{rawTopic: rawTopic, from: from, to: to, maxIDs: maxIDs,
		deadAt: map[coord]string{}, deadByID: map[string]string{}, ids: map[string]idState{},
		reasons: map[string]string{}, res: Result{DeadLettered: map[string]int{}}}
}

// AddDeadLetter indexes one record of the dead-letter topic. A dead letter
// of a raw-topic record (enrich's invalid_json, invalid_schema) is indexed by
// that record's partition and offset only, so that it accounts for exactly
// the record it rejected and not for other records that reuse its event id.
// A dead letter from a later stage (aggregate's too_late) points into a
// topic this check does not read, so it is indexed by its event id: the
// event_id it names, or else the one its original bytes decode to.
func (l *Ledger) AddDeadLetter(value []byte) {
	l.res.DeadLetters++
	var dl schemas.DeadLetter
	if err := json.Unmarshal(value, &dl); err != nil || dl.Reason == "" {
		l.res.UnreadableDeadLetters++
		return
	}
	reason := l.intern(dl.Reason)
	if dl.Topic == l.rawTopic {
		l.deadAt[coord{dl.Partition, dl.Offset}] = reason
		return
	}
	if dl.EventID != "" {
		l.deadByID[dl.EventID] = reason
		return
	}
	if id, _, ok := decodeIDTime(dl.Original); ok && id != "" {
		l.deadByID[id] = reason
		return
	}
	l.res.UnreadableDeadLetters++
}

func (l *Ledger) intern(s string) string {
	if v, ok := l.reasons[s]; ok {
		return v
	}
	l.reasons[s] = s
	return s
}

// TooManyIDsError says that a range holds more distinct event ids than the
// ledger may keep.
type TooManyIDsError struct{ Max int }

func (e *TooManyIDsError) Error() string {
	return fmt.Sprintf("the range holds more than %d distinct event ids, the limit of one check", e.Max)
}

// AddRaw accounts for one raw record at partition/offset with Kafka
// timestamp ts. The range applies to the event time the record carries;
// a record without a readable event time is in the range when its Kafka
// timestamp is. It fails only when the ledger is full.
func (l *Ledger) AddRaw(partition int32, offset int64, ts time.Time, value []byte) error {
	l.res.Records++
	id, at, timeOK := decodeIDTime(value)
	when := ts
	if timeOK {
		when = at
	}
	if when.Before(l.from) || !when.Before(l.to) {
		l.res.OutsideRange++
		return nil
	}
	l.res.Checked++
	if reason, ok := l.deadAt[coord{partition, offset}]; ok {
		l.res.DeadLettered[reason]++
		return nil
	}
	if id == "" || !timeOK {
		why := "does not decode to an event_id and is not in the dead-letter topic"
		if id != "" {
			why = "has no readable event time and is not in the dead-letter topic"
		}
		l.res.Missing = append(l.res.Missing, Missing{EventID: id, Partition: partition, Offset: offset, Records: 1, Why: why})
		return nil
	}
	if st, seen := l.ids[id]; seen {
		st.records++
		l.ids[id] = st
		l.res.Duplicates++
		return nil
	}
	if l.maxIDs > 0 && len(l.ids) >= l.maxIDs {
		return &TooManyIDsError{Max: l.maxIDs}
	}
	l.ids[id] = idState{partition: partition, offset: offset, records: 1}
	return nil
}

// EachID calls fn with the event ids still to be looked up in the store, in
// batches of at most size, after the last AddRaw; fn may call MarkCounted.
func (l *Ledger) EachID(size int, fn func(ids []string) error) error {
	batch := make([]string, 0, min(size, len(l.ids)))
	for id := range l.ids {
		batch = append(batch, id)
		if len(batch) == size {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// MarkCounted records that the store counts these event ids.
func (l *Ledger) MarkCounted(ids []string) {
	for _, id := range ids {
		if _, ok := l.ids[id]; ok {
			delete(l.ids, id)
			l.res.CountedIDs++
		}
	}
}

// Result accounts for every event id: counted, dead-lettered by a later
// stage, or missing. Missing records are sorted by partition and offset.
func (l *Ledger) Result() Result {
	r := l.res
	r.DeadLettered = make(map[string]int, len(l.res.DeadLettered))
	for k, v := range l.res.DeadLettered {
		r.DeadLettered[k] = v
	}
	r.Missing = append([]Missing(nil), l.res.Missing...)
	r.IDs = l.res.CountedIDs + len(l.ids)
	for id, st := range l.ids {
		if reason, dead := l.deadByID[id]; dead {
			r.DeadLettered[reason] += int(st.records)
		} else {
			r.Missing = append(r.Missing, Missing{EventID: id, Partition: st.partition, Offset: st.offset,
				Records: int(st.records), Why: "is not in ClickHouse and not in the dead-letter topic"})
		}
	}
	sort.Slice(r.Missing, func(i, j int) bool {
		a, b := r.Missing[i], r.Missing[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return r
}

// decodeIDTime reads only event_id and time from a usage event (raw or
// enriched): the rest of the record may be anything. ok says whether the
// time was readable; id is "" when event_id is absent or not a string.
func decodeIDTime(value []byte) (id string, at time.Time, ok bool) {
	var v struct {
		EventID json.RawMessage `json:"event_id"`
		Time    json.RawMessage `json:"time"`
	}
	if err := json.Unmarshal(value, &v); err != nil {
		return "", time.Time{}, false
	}
	if len(v.EventID) > 0 && v.EventID[0] == '"' {
		_ = json.Unmarshal(v.EventID, &id)
	}
	if len(v.Time) > 0 && !bytes.Equal(v.Time, []byte("null")) {
		ok = at.UnmarshalJSON(v.Time) == nil && !at.IsZero()
	}
	return id, at, ok
}
