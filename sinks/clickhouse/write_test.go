package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aivis-dev/aivis/schemas"
)

func FuzzLabelsJSON(f *testing.F) {
	for _, seed := range [][4]string{
		{"env", "prod", "app", "search"}, {"", "", "a", ""}, {"<b>", "x&y", "q\"", "back\\slash"},
		{"tab\t", "nl\n", "ü", "\u2028"}, {"\xff", "ok", "del\x7f", "~"}, {"b", "1", "a", "2"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		for _, labels := range []map[string]string{{k1: v1}, {k1: v1, k2: v2}, {k1: v1, k2: v2, "z": "last", "a": "first"}} {
			want, err := json.Marshal(labels)
			if err != nil {
				t.Fatal(err)
			}
			var b eventBuffers
			b.text = append(b.text, "earlier"...)
			if got := b.labelsJSON(labels); got != string(want) {
				t.Fatalf("labelsJSON(%q) = %s, want %s", labels, got, want)
			}
		}
	})
}

// TestEventBuffersReuse fills pooled buffers with one set of events, then
// another, and expects exactly the columns fresh buffers give.
func TestEventBuffersReuse(t *testing.T) {
	first := testEvents(300)
	second := testEvents(200)
	for i, se := range second {
		e := *se.Event
		e.EventID = fmt.Sprint("second-", i)
		if i%2 == 0 {
			e.Usage, e.Labels, e.RawUsage = nil, nil, nil
		}
		if i%3 == 0 {
			e.Labels = map[string]string{"k": fmt.Sprint("<", i, ">")}
		}
		second[i].Event = &e
	}
	reused := new(eventBuffers)
	if _, err := reused.columns(first); err != nil {
		t.Fatal(err)
	}
	got, err := reused.columns(second)
	if err != nil {
		t.Fatal(err)
	}
	want, err := new(eventBuffers).columns(second)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("reused buffers give other columns than fresh ones")
	}
	for _, c := range got {
		if c.name == "labels" {
			labels := c.data.([]string)
			for i, se := range second {
				js, _ := json.Marshal(se.Event.Labels)
				if len(se.Event.Labels) == 0 {
					js = []byte("{}")
				}
				if labels[i] != string(js) {
					t.Fatalf("labels of event %d: %s, want %s", i, labels[i], js)
				}
			}
		}
	}
}

// TestColumnsOfLabelsKeptAsText checks that events decoded as the
// aggregator decodes them, labels kept as text, give the same columns as
// the same events with their labels in maps, whatever the labels hold.
func TestColumnsOfLabelsKeptAsText(t *testing.T) {
	events := testEvents(6)
	for i, labels := range []map[string]string{nil, {"team": "a<b"}, {"x": "1", "a": "2"}, {"k": "café"}, {"": ""}} {
		e := *events[i].Event
		e.Labels = labels
		events[i].Event = &e
	}
	decode := func(d *schemas.Decoder) []schemas.StoredEvent {
		out := make([]schemas.StoredEvent, len(events))
		for i, se := range events {
			e := new(schemas.Enriched)
			if err := d.Enriched(se.Event.AppendJSON(nil), e); err != nil {
				t.Fatal(err)
			}
			out[i] = schemas.StoredEvent{Event: e, Partition: se.Partition, Offset: se.Offset}
		}
		return out
	}
	asText := decode(&schemas.Decoder{SkipCostLines: true, LabelsAsJSON: true})
	texts := 0
	for _, se := range asText {
		if se.Event.LabelsJSON != nil {
			texts++
		}
	}
	if texts < 3 {
		t.Fatalf("%d of %d events kept their labels as text; the test means to cover both ways", texts, len(asText))
	}
	got, err := new(eventBuffers).columns(asText)
	if err != nil {
		t.Fatal(err)
	}
	want, err := new(eventBuffers).columns(decode(&schemas.Decoder{SkipCostLines: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("labels kept as text give other columns than labels in maps")
	}
}

// TestUnsetColumnsLeftOut checks that a column unset in every event is not
// sent (the server's default is the same value) and that one set event
// brings it back.
func TestUnsetColumnsLeftOut(t *testing.T) {
	names := func(events []schemas.StoredEvent) map[string]bool {
		cols, err := new(eventBuffers).columns(events)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, c := range cols {
			if !c.omitable {
				out[c.name] = true
			}
		}
		return out
	}
	events := testEvents(3)
	got := names(events)
	for _, name := range []string{"event_id", "time", "date", "model", "cost_usd", "labels", "src_offset"} {
		if !got[name] {
			t.Errorf("column %s left out though set", name)
		}
	}
	for _, name := range []string{"cost_center", "error_type", "reasoning_output_tokens", "unowned", "src_partition", "rating_version"} {
		if got[name] {
			t.Errorf("column %s sent though unset in every event", name)
		}
	}
	e := *events[1].Event
	e.Owner.CostCenter, e.Flags.Unowned = "cc-1", true
	events[1] = schemas.StoredEvent{Event: &e, Partition: 2, Offset: 1, RatingVersion: 3}
	got = names(events)
	for _, name := range []string{"cost_center", "unowned", "src_partition", "rating_version"} {
		if !got[name] {
			t.Errorf("column %s left out though one event sets it", name)
		}
	}
}

// smallBlocks makes Write send events in blocks of n rows for the rest of
// the test.
func smallBlocks(t *testing.T, n int) {
	old := maxEventsPerBlock
	maxEventsPerBlock = n
	t.Cleanup(func() { maxEventsPerBlock = old })
}

// TestWriteEventsInBlocks writes more events than one block takes and
// expects every one stored exactly once, in one part: the blocks of one
// INSERT, not an INSERT each.
func TestWriteEventsInBlocks(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	smallBlocks(t, 1_000)
	events := testEvents(2*maxEventsPerBlock + 7)
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	var n, distinct uint64
	if err := s.conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM "+TableEvents).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(events)) || distinct != n {
		t.Errorf("%s holds %d rows of %d ids, want %d of as many", TableEvents, n, distinct, len(events))
	}
	// testEvents spans one month; one INSERT makes one part of level 0.
	var parts uint64
	var level uint32
	if err := s.conn.QueryRow(ctx, "SELECT count(), max(level) FROM system.parts WHERE database = currentDatabase() AND table = '"+TableEvents+"' AND active").Scan(&parts, &level); err != nil {
		t.Fatal(err)
	}
	if parts != 1 || level != 0 {
		t.Errorf("%s has %d parts, highest level %d; want one part written by one INSERT (level 0)", TableEvents, parts, level)
	}
}

// TestWriteEventsColumnsSetLater writes events in blocks of which only a
// later one sets some fields, and expects every value stored: the INSERT
// that left those columns out ends, and another brings them in.
func TestWriteEventsColumnsSetLater(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	smallBlocks(t, 1_000)
	events := testEvents(3*maxEventsPerBlock + 7)
	for i := range events {
		e := *events[i].Event
		switch {
		case i < maxEventsPerBlock && i%10 == 0:
			e.Owner.CostCenter = "cc-first" // in the first INSERT, zero in later blocks
		case i >= maxEventsPerBlock && i < 2*maxEventsPerBlock && i%7 == 0:
			e.Status, e.ErrorType = schemas.StatusError, "rate_limit"
		case i >= 2*maxEventsPerBlock && i%5 == 0:
			e.Owner.CostCenter, e.EndUser = "cc-late", "user-1"
			events[i].Partition = 3
		}
		events[i].Event = &e
	}
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, se := range events {
		e := se.Event
		want[fmt.Sprintf("%s|%s|%s|%d", e.Owner.CostCenter, e.ErrorType, e.EndUser, se.Partition)]++
	}
	rows, err := s.conn.Query(ctx, "SELECT cost_center, error_type, end_user, src_partition, count() FROM "+TableEvents+" GROUP BY cost_center, error_type, end_user, src_partition")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]uint64{}
	for rows.Next() {
		var cc, et, eu string
		var p uint32
		var n uint64
		if err := rows.Scan(&cc, &et, &eu, &p, &n); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s|%s|%s|%d", cc, et, eu, p)] = n
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	// Blocks 1 and 4 need nothing new; 2 and 3 each start an INSERT. The
	// parts an INSERT wrote stay listed, inactive, once merged.
	var parts uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = '"+TableEvents+"' AND level = 0").Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 3 {
		t.Errorf("%s has %d parts, want 3: one per INSERT", TableEvents, parts)
	}
}

// TestEventBuffersReleaseAll checks that released buffers refer to no
// event, also past the last INSERT's length when an earlier one was longer.
func TestEventBuffersReleaseAll(t *testing.T) {
	b := new(eventBuffers)
	if _, err := b.columns(testEvents(300)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.columns(testEvents(20)); err != nil {
		t.Fatal(err)
	}
	b.release()
	for i, id := range b.ids[:cap(b.ids)] {
		if id != "" {
			t.Fatalf("released buffers still hold event id %q at %d", id, i)
		}
	}
	for i, tags := range b.tags[:cap(b.tags)] {
		if tags != nil {
			t.Fatalf("released buffers still hold the tags of event %d", i)
		}
	}
}

// TestWriteReservedColumnsExact writes blocks whose string columns are
// large enough to be sized ahead (reserveStrings), in two INSERTs (a later
// block brings a column in), and expects every stored string to be its
// event's: nothing of the reservation is sent, nothing is shifted.
func TestWriteReservedColumnsExact(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	smallBlocks(t, 4_000)
	events := testEvents(3*maxEventsPerBlock + 11)
	want := map[string]string{}
	for i := range events {
		e := *events[i].Event
		e.Labels = map[string]string{"request": fmt.Sprintf("r-%07d-%s", i, strings.Repeat("x", i%50))}
		e.RawUsage = []byte(fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d}`, i, 3*i))
		if i >= 2*maxEventsPerBlock && i%3 == 0 {
			e.Owner.CostCenter = fmt.Sprintf("cc-%d", i) // starts a second INSERT
		}
		events[i].Event = &e
		want[e.EventID] = fmt.Sprintf(`{"request":%q}|%s|%s`, e.Labels["request"], e.RawUsage, e.Owner.CostCenter)
	}
	if total := 40 * maxEventsPerBlock; total < minReserve {
		t.Fatalf("a block's labels take about %d bytes, under minReserve (%d): the test no longer reaches the reservation", total, minReserve)
	}
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	storedAsWanted(t, s, want, "labels", "raw_usage", "cost_center")
}

// storedAsWanted fails t unless TableEvents holds each event of want once,
// with the String columns cols joined by "|" as want has them, and no
// other event.
func storedAsWanted(t *testing.T, s *Store, want map[string]string, cols ...string) {
	t.Helper()
	ctx := context.Background()
	rows, err := s.conn.Query(ctx, "SELECT event_id, "+strings.Join(cols, ", ")+" FROM "+TableEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id string
		vals := make([]string, len(cols))
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[id]; dup {
			t.Errorf("event %s stored twice", id)
		}
		got[id] = strings.Join(vals, "|")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%s holds %d events, want %d", TableEvents, len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if got[id] != w && bad < 5 {
			bad++
			t.Errorf("event %s stored as %q, want %q", id, got[id], w)
		}
	}
}
