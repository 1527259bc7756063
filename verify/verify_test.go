package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/testenv"
	"github.com/aivis-dev/aivis/schemas"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testRaw  = "verify-test-raw"
	testDead = "verify-test-deadletter"
)

// rawEvent is a valid raw usage event.
func rawEvent(id string, at time.Time) []byte {
	b, err := json.Marshal(schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: id, Time: at,
		Kind: schemas.KindLLMRequest, Source: "verify-test", Provider: "openai", Model: "gpt-4o",
		Usage: &schemas.Usage{InputTokens: schemas.Int64(10), OutputTokens: schemas.Int64(5)}})
	if err != nil {
		panic(err)
	}
	return b
}

type sourceFixture struct {
	brokers   []string
	raw, dead string
	store     *chsink.Store
	from      time.Time
	to        time.Time
	// stored is what ClickHouse should hold when nothing is lost.
	stored []schemas.StoredEvent
}

// newSourceFixture fills a private kfake cluster and a fresh ClickHouse
// database as a healthy pipeline would leave them, except that ClickHouse
// holds nothing yet: the test writes fix.stored (or part of it).
//
// The raw topic holds ten events v-00..v-09 in the range, v-03 sent twice,
// one record that is not JSON (dead-lettered by enrich by its coordinates),
// v-late (dead-lettered by aggregate as too_late, by its event id), v-out
// whose event time is outside the range, and v-old whose Kafka timestamp is
// before the scan (so it is never read, though it is in no table).
//
// Without brokers it runs on kfake; with brokers it creates topics of its
// own there and deletes them when the test ends.
func newSourceFixture(t *testing.T, brokers ...string) *sourceFixture {
	t.Helper()
	ctx := context.Background()
	addr, db := testenv.ClickHouseDatabase(t)
	cfg := chsink.DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	store, err := chsink.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	f := &sourceFixture{brokers: brokers, raw: testRaw, dead: testDead, store: store}
	if len(brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, testRaw, testDead))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		f.brokers = c.ListenAddrs()
	} else {
		f.raw, f.dead = privateTopics(t, brokers)
	}
	raw, dead := f.raw, f.dead
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(topic, key string, value []byte, ts time.Time) *kgo.Record {
		t.Helper()
		r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Timestamp: ts}).First()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	f.from = time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	f.to = f.from.Add(time.Hour)
	at := func(i int) time.Time { return f.from.Add(time.Duration(i) * time.Minute) }

	// First on its partition, so that the scan starts after it.
	produce(raw, "v-old", rawEvent("v-old", at(1)), f.from.Add(-2*time.Hour))
	for i := range 10 {
		id := fmt.Sprintf("v-%02d", i)
		produce(raw, id, rawEvent(id, at(i)), at(i).Add(time.Second))
		f.stored = append(f.stored, storedEvent(id, at(i)))
	}
	produce(raw, "v-03", rawEvent("v-03", at(3)), at(20)) // a producer retry
	produce(raw, "v-out", rawEvent("v-out", f.to.Add(time.Minute)), at(30))
	bad := produce(raw, "bad", []byte(`{not json`), at(31))
	late := produce(raw, "v-late", rawEvent("v-late", at(2)), at(32))

	enrichDead := bus.NewDeadLetters("enrich", prometheus.NewRegistry())
	dl := enrichDead.Record(bad, schemas.ReasonInvalidJSON, "invalid character")
	produce(dead, string(dl.Key), dl.Value, at(33))
	// Aggregate dead-letters the enriched record, from another topic.
	enriched, _ := json.Marshal(schemas.Enriched{Event: schemas.Event{EventID: "v-late", Time: at(2)}})
	aggDead := bus.NewDeadLetters("aggregate", prometheus.NewRegistry())
	dl = aggDead.Record(&kgo.Record{Topic: "verify-test-enriched", Partition: late.Partition, Offset: 7, Value: enriched}, schemas.ReasonTooLate, "too late")
	produce(dead, string(dl.Key), dl.Value, at(34))
	// Noise: a dead letter that is not one, and one of a record outside the scan.
	produce(dead, "junk", []byte("junk"), at(35))
	return f
}

func storedEvent(id string, at time.Time) schemas.StoredEvent {
	return schemas.StoredEvent{Event: &schemas.Enriched{
		Event: schemas.Event{SchemaVersion: schemas.SchemaVersion, EventID: id, Time: at, Kind: schemas.KindLLMRequest,
			Source: "verify-test", Provider: "openai", Model: "gpt-4o"},
		Owner: schemas.Owner{Team: "t", Project: "p"},
	}}
}

func (f *sourceFixture) check(t *testing.T, o Options) *Report {
	t.Helper()
	o.From, o.To = f.from, f.to
	o.RawTopic, o.DeadLetterTopic = f.raw, f.dead
	if o.Margin == 0 {
		o.Margin = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Check(ctx, bus.Dialer{Brokers: f.brokers, ClientID: "verify-test"}, f.store, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestVerifySourceNamesTheLostEvent: ClickHouse holds every event but v-07;
// the check names exactly v-07, and passes once it is written.
func TestVerifySourceNamesTheLostEvent(t *testing.T) {
	f := newSourceFixture(t)
	ctx := context.Background()
	var lost []schemas.StoredEvent
	for _, e := range f.stored {
		if e.Event.EventID != "v-07" {
			lost = append(lost, e)
		}
	}
	if err := f.store.Write(ctx, lost, nil); err != nil {
		t.Fatal(err)
	}
	rep := f.check(t, Options{Batch: 4}) // several store queries
	if len(rep.Missing) != 1 || rep.Missing[0].EventID != "v-07" || rep.OK() {
		t.Fatalf("missing = %+v, want exactly v-07", rep.Missing)
	}

	if err := f.store.Write(ctx, f.stored, nil); err != nil {
		t.Fatal(err)
	}
	rep = f.check(t, Options{})
	if !rep.OK() {
		t.Fatalf("missing = %+v after writing every event, want none", rep.Missing)
	}
	// v-old is before the scan; v-00..09, the retry, v-out, bad and v-late
	// are read.
	want := Result{Records: 14, OutsideRange: 1, Checked: 13, IDs: 11, CountedIDs: 10, Duplicates: 1,
		DeadLettered: map[string]int{schemas.ReasonInvalidJSON: 1, schemas.ReasonTooLate: 1},
		DeadLetters:  3, UnreadableDeadLetters: 1}
	if fmt.Sprint(rep.Result) != fmt.Sprint(want) {
		t.Errorf("result\n got %+v\nwant %+v", rep.Result, want)
	}
	if rep.TooLate() != 1 {
		t.Errorf("too late = %d, want 1", rep.TooLate())
	}
}

// TestVerifySourceUndecodedRecordNeedsItsDeadLetter: a record that does not
// decode is accounted for only by a dead letter at its own coordinates.
func TestVerifySourceUndecodedRecordNeedsItsDeadLetter(t *testing.T) {
	f := newSourceFixture(t)
	if err := f.store.Write(context.Background(), f.stored, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	r, err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: f.raw, Value: []byte(`[1,2]`), Timestamp: f.from.Add(time.Minute)}).First()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep := f.check(t, Options{})
	if len(rep.Missing) != 1 || rep.Missing[0].EventID != "" || rep.Missing[0].Partition != r.Partition || rep.Missing[0].Offset != r.Offset {
		t.Fatalf("missing = %+v, want the record at %d@%d", rep.Missing, r.Partition, r.Offset)
	}
}

// TestVerifySourceMaxEvents: a scan larger than MaxEvents is refused
// before anything is read.
func TestVerifySourceMaxEvents(t *testing.T) {
	f := newSourceFixture(t)
	o := Options{From: f.from, To: f.to, Margin: time.Minute, RawTopic: f.raw, DeadLetterTopic: f.dead, MaxEvents: 5}
	_, err := Check(context.Background(), bus.Dialer{Brokers: f.brokers, ClientID: "verify-test"}, f.store, o)
	var tooMany *TooManyEventsError
	if !errors.As(err, &tooMany) || tooMany.Topic != f.raw || tooMany.Records != 14 {
		t.Fatalf("err = %v, want a TooManyEventsError for 14 records of %s", err, testRaw)
	}
}

// TestVerifySourceMissingTopic names the topic that does not exist.
func TestVerifySourceMissingTopic(t *testing.T) {
	f := newSourceFixture(t)
	o := Options{From: f.from, To: f.to, RawTopic: "no-such-topic", DeadLetterTopic: f.dead}
	_, err := Check(context.Background(), bus.Dialer{Brokers: f.brokers, ClientID: "verify-test"}, f.store, o)
	if err == nil || !strings.Contains(err.Error(), "no-such-topic does not exist") {
		t.Fatalf("err = %v, want one naming the missing topic", err)
	}
}

// TestVerifySourceRealBroker runs the lost-event case on the real broker,
// whose offset-by-timestamp lookups kfake only imitates, on topics of its
// own.
func TestVerifySourceRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Kafka and ClickHouse")
	}
	f := newSourceFixture(t, testenv.Kafka(t)...)
	ctx := context.Background()
	if err := f.store.Write(ctx, f.stored[1:], nil); err != nil {
		t.Fatal(err)
	}
	rep := f.check(t, Options{})
	if len(rep.Missing) != 1 || rep.Missing[0].EventID != "v-00" {
		t.Fatalf("missing = %+v, want exactly v-00", rep.Missing)
	}
	if rep.Records != 14 || rep.TooLate() != 1 || rep.DeadLettered[schemas.ReasonInvalidJSON] != 1 {
		t.Errorf("result %+v, want 14 records read, 1 too_late, 1 invalid_json", rep.Result)
	}
	if err := f.store.Write(ctx, f.stored[:1], nil); err != nil {
		t.Fatal(err)
	}
	if rep := f.check(t, Options{}); !rep.OK() {
		t.Fatalf("missing = %+v after writing every event, want none", rep.Missing)
	}
}

// privateTopics creates a raw and a dead-letter topic named for this test
// run and deletes them when it ends.
func privateTopics(t *testing.T, brokers []string) (raw, dead string) {
	t.Helper()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	raw, dead = "verify-test-raw-"+suffix, "verify-test-deadletter-"+suffix
	adm, err := bus.Dialer{Brokers: brokers, ClientID: "verify-test"}.Admin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, 3, 1, nil, raw, dead)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		adm.Close()
		t.Fatalf("creating topics %s, %s: %v", raw, dead, err)
	}
	t.Cleanup(func() {
		defer adm.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, raw, dead); err != nil {
			t.Errorf("deleting topics %s, %s: %v", raw, dead, err)
		}
	})
	return raw, dead
}
