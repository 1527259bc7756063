package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/schemas"
)

func deadLetter(topic string, partition int32, offset int64, reason string, original []byte) []byte {
	b, _ := json.Marshal(schemas.DeadLetter{Stage: "test", Reason: reason, Topic: topic, Partition: partition, Offset: offset, Original: original})
	return b
}

// TestLedgerAccounting walks the cases one record at a time: which records
// are checked, and how each is accounted for.
func TestLedgerAccounting(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	in, out := from.Add(time.Minute), to.Add(time.Minute)
	type raw struct {
		partition int32
		offset    int64
		ts        time.Time
		value     []byte
	}
	cases := []struct {
		name    string
		dead    [][]byte
		raw     []raw
		counted []string
		want    string // Missing, as "id@partition:offset" or "@partition:offset"
		check   func(t *testing.T, r Result)
	}{
		{name: "counted", raw: []raw{{0, 1, in, rawEvent("a", in)}}, counted: []string{"a"}, want: "[]"},
		{name: "lost", raw: []raw{{0, 1, in, rawEvent("a", in)}, {1, 4, in, rawEvent("b", in)}}, counted: []string{"a"}, want: "[b@1:4]"},
		{name: "duplicate of a counted id", raw: []raw{{0, 1, in, rawEvent("a", in)}, {0, 2, in, rawEvent("a", in)}}, counted: []string{"a"}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.Duplicates != 1 || r.IDs != 1 {
					t.Errorf("duplicates %d ids %d, want 1 and 1", r.Duplicates, r.IDs)
				}
			}},
		{name: "a lost id is named once", raw: []raw{{2, 9, in, rawEvent("a", in)}, {2, 3, in, rawEvent("a", in)}}, want: "[a@2:9]"},
		{name: "event time outside the range is not checked", raw: []raw{{0, 1, in, rawEvent("a", out)}, {0, 2, out, rawEvent("b", in.Add(-2*time.Hour))}}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.OutsideRange != 2 || r.Checked != 0 {
					t.Errorf("outside %d checked %d, want 2 and 0", r.OutsideRange, r.Checked)
				}
			}},
		{name: "event time wins over the Kafka timestamp", raw: []raw{{0, 1, out, rawEvent("a", in)}}, want: "[a@0:1]"},
		{name: "undecodable record without its dead letter", raw: []raw{{1, 7, in, []byte(`{not json`)}}, want: "[@1:7]"},
		{name: "undecodable record outside the range by Kafka timestamp", raw: []raw{{1, 7, out, []byte(`{not json`)}}, want: "[]"},
		{name: "undecodable record with its dead letter", dead: [][]byte{deadLetter("raw", 1, 7, schemas.ReasonInvalidJSON, []byte(`{not json`))},
			raw: []raw{{1, 7, in, []byte(`{not json`)}}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.DeadLettered[schemas.ReasonInvalidJSON] != 1 {
					t.Errorf("dead-lettered %v, want invalid_json 1", r.DeadLettered)
				}
			}},
		{name: "a dead letter elsewhere in the topic does not count", dead: [][]byte{deadLetter("raw", 1, 8, schemas.ReasonInvalidJSON, nil)},
			raw: []raw{{1, 7, in, []byte(`{not json`)}}, want: "[@1:7]"},
		{name: "a dead letter of the same coordinates in another topic does not count", dead: [][]byte{deadLetter("other", 1, 7, schemas.ReasonInvalidJSON, nil)},
			raw: []raw{{1, 7, in, []byte(`{not json`)}}, want: "[@1:7]"},
		{name: "invalid schema with an id, dead-lettered by coordinates", dead: [][]byte{deadLetter("raw", 0, 1, schemas.ReasonInvalidSchema, nil)},
			raw: []raw{{0, 1, in, []byte(`{"event_id":"a","time":"2026-11-26T10:01:00Z"}`)}}, want: "[]"},
		{name: "a raw dead letter does not account for another record of its id",
			dead: [][]byte{deadLetter("raw", 0, 1, schemas.ReasonInvalidSchema, rawEvent("a", in))},
			raw:  []raw{{0, 1, in, rawEvent("a", in)}, {0, 2, in, rawEvent("a", in)}}, want: "[a@0:2]"},
		{name: "id without a readable time", raw: []raw{{0, 1, in, []byte(`{"event_id":"a","time":"yesterday"}`)}}, want: "[a@0:1]"},
		{name: "too late downstream, by event id", dead: [][]byte{deadLetter("enriched", 5, 99, schemas.ReasonTooLate, rawEvent("a", in))},
			raw: []raw{{0, 1, in, rawEvent("a", in)}, {0, 2, in, rawEvent("a", in)}}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.TooLate() != 2 {
					t.Errorf("too late %d, want 2 records", r.TooLate())
				}
			}},
		{name: "too late downstream, by the event_id the dead letter names", dead: [][]byte{func() []byte {
			// The original is cut short, as for a record over 560 KiB: it
			// does not decode, the named id does.
			b, _ := json.Marshal(schemas.DeadLetter{Stage: "aggregate", Reason: schemas.ReasonTooLate, Topic: "enriched", EventID: "a",
				Original: rawEvent("a", in)[:5], OriginalTruncated: true})
			return b
		}()}, raw: []raw{{0, 1, in, rawEvent("a", in)}}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.TooLate() != 1 || r.UnreadableDeadLetters != 0 {
					t.Errorf("too late %d, unreadable dead letters %d, want 1 and 0", r.TooLate(), r.UnreadableDeadLetters)
				}
			}},
		{name: "counted wins over a downstream dead letter", dead: [][]byte{deadLetter("enriched", 5, 99, schemas.ReasonTooLate, rawEvent("a", in))},
			raw: []raw{{0, 1, in, rawEvent("a", in)}}, counted: []string{"a"}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.TooLate() != 0 || r.CountedIDs != 1 {
					t.Errorf("too late %d counted %d, want 0 and 1", r.TooLate(), r.CountedIDs)
				}
			}},
		{name: "unreadable dead letters are counted", dead: [][]byte{[]byte(`junk`), deadLetter("enriched", 0, 0, schemas.ReasonInvalidSchema, []byte(`junk`))}, want: "[]",
			check: func(t *testing.T, r Result) {
				if r.UnreadableDeadLetters != 2 || r.DeadLetters != 2 {
					t.Errorf("unreadable %d of %d, want 2 of 2", r.UnreadableDeadLetters, r.DeadLetters)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLedger("raw", from, to, 0)
			for _, d := range c.dead {
				l.AddDeadLetter(d)
			}
			for _, r := range c.raw {
				if err := l.AddRaw(r.partition, r.offset, r.ts, r.value); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.EachID(1, func(ids []string) error {
				for _, id := range ids {
					for _, c := range c.counted {
						if c == id {
							l.MarkCounted([]string{id})
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			r := l.Result()
			got := make([]string, 0, len(r.Missing))
			for _, m := range r.Missing {
				got = append(got, fmt.Sprintf("%s@%d:%d", m.EventID, m.Partition, m.Offset))
			}
			if fmt.Sprint(got) != c.want {
				t.Errorf("missing %v, want %s", got, c.want)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func TestLedgerMaxIDs(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	l := NewLedger("raw", at, at.Add(time.Hour), 2)
	for i, id := range []string{"a", "b", "a"} {
		if err := l.AddRaw(0, int64(i), at, rawEvent(id, at)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var tooMany *TooManyIDsError
	if err := l.AddRaw(0, 3, at, rawEvent("c", at)); !errors.As(err, &tooMany) {
		t.Fatalf("third id: err = %v, want TooManyIDsError", err)
	}
}

// FuzzDecodeIDTime: any bytes decode without panicking, and an event that
// enrich accepts yields the id and time that enrich sees.
func FuzzDecodeIDTime(f *testing.F) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 123, time.UTC)
	for _, seed := range [][]byte{
		rawEvent("a", at), []byte(`{not json`), []byte(`[1,2]`), []byte(`null`),
		[]byte(`{"event_id":7,"time":"2026-11-26T10:00:00Z"}`), []byte(`{"event_id":"x","time":null}`),
		[]byte(`{"Event_ID":"x","TIME":"2026-11-26T10:00:00Z"}`),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, when, ok := decodeIDTime(b)
		ev, err := schemas.Decode(b)
		if err != nil {
			return
		}
		if id != ev.EventID || !ok || !when.Equal(ev.Time) {
			t.Fatalf("decodeIDTime = %q %v %v, enrich decodes %q %v", id, when, ok, ev.EventID, ev.Time)
		}
	})
}

// BenchmarkLedgerAddRaw decodes and keeps one distinct 36-character event
// id per record (as UUIDs are) and reports the heap each id holds, the
// figure the docs and the --max-events help quote.
func BenchmarkLedgerAddRaw(b *testing.B) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	values := make([][]byte, b.N)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"schema_version":"1","event_id":"01JD0000-0000-0000-0000-%012d","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"gw","provider":"openai","model":"gpt-4o","usage":{"input_tokens":1200,"output_tokens":300}}`, i)
	}
	b.SetBytes(int64(len(values[0])))
	b.ReportAllocs()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l := NewLedger("raw", at, at.Add(time.Hour), 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.AddRaw(0, int64(i), at, values[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(values)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "heap-B/id")
	runtime.KeepAlive(l)
}
