package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/aivis-dev/aivis/ingest/client"
	"github.com/aivis-dev/aivis/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTopic = "client-test"

// cluster starts a one-broker kfake cluster holding testTopic, on port
// (0 picks one), and closes it when the test ends.
func cluster(t testing.TB, port int) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(3, testTopic))
	if err != nil {
		t.Fatalf("starting the kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// deadBroker returns the address of a port nothing listens on.
func deadBroker(t *testing.T) (addr string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return addr, port
}

func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	if cfg.Topic == "" {
		cfg.Topic = testTopic
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func event(i int) *schemas.Event {
	return &schemas.Event{
		Kind:     schemas.KindLLMRequest,
		Provider: "openai",
		Model:    "gpt-test",
		Status:   schemas.StatusOK,
		Usage:    &schemas.Usage{InputTokens: schemas.Int64(int64(100 + i)), OutputTokens: schemas.Int64(7)},
	}
}

// consume reads n records of testTopic from the start and returns them by
// key; it fails the test on a duplicate key.
func consume(t *testing.T, brokers []string, n int) map[string]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]*kgo.Record{}
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if got[string(r.Key)] != nil {
				t.Errorf("key %s arrived twice", r.Key)
			}
			got[string(r.Key)] = r
		})
	}
	return got
}

func TestSendKeysByEventID(t *testing.T) {
	_, brokers := cluster(t, 0)
	c := newClient(t, client.Config{Brokers: brokers, Source: "unit-gw"})
	ctx := context.Background()
	sent := map[string]int{}
	for i := range 50 {
		ev := event(i)
		if i%5 == 0 {
			ev.EventID = "caller-" + strconv.Itoa(i)
			ev.Source = "caller-source"
		}
		if err := c.Send(ctx, ev); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		sent[ev.EventID] = i
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s != (client.Stats{Sent: 50, Acked: 50}) {
		t.Fatalf("stats after Flush = %+v, want 50 sent and acked", s)
	}
	got := consume(t, brokers, 50)
	for key, r := range got {
		i, ok := sent[key]
		if !ok {
			t.Fatalf("unexpected key %s", key)
		}
		var ev schemas.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.EventID != key {
			t.Errorf("record key %s carries event_id %s", key, ev.EventID)
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("event %s: %v", key, err)
		}
		wantSource := "unit-gw"
		if i%5 == 0 {
			wantSource = "caller-source"
		}
		if ev.Source != wantSource || ev.SchemaVersion != schemas.SchemaVersion || time.Since(ev.Time) > time.Minute {
			t.Errorf("event %s: source %q, schema_version %q, time %v", key, ev.Source, ev.SchemaVersion, ev.Time)
		}
		if schemas.Get(ev.Usage.InputTokens) != int64(100+i) {
			t.Errorf("event %s: input_tokens %d, want %d", key, schemas.Get(ev.Usage.InputTokens), 100+i)
		}
	}
}

func TestSendRejectsInvalidEventSynchronously(t *testing.T) {
	_, brokers := cluster(t, 0)
	c := newClient(t, client.Config{Brokers: brokers})
	ev := event(0)
	ev.Model = ""
	ev.Usage.InputTokens = schemas.Int64(-1)
	for name, send := range map[string]func() error{
		"Send":    func() error { return c.Send(context.Background(), ev) },
		"TrySend": func() error { return c.TrySend(ev) },
	} {
		err := send()
		var ve *schemas.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: err = %v, want a *schemas.ValidationError", name, err)
		}
		if len(ve.Problems) < 2 {
			t.Errorf("%s: %v, want model and usage named", name, err)
		}
	}
	if err := c.Send(context.Background(), nil); err == nil {
		t.Error("Send(nil) succeeded")
	}
	if s := c.Stats(); s != (client.Stats{}) {
		t.Fatalf("stats after invalid events = %+v, want zero", s)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  client.Config
		opts []kgo.Opt
	}{
		"no brokers":       {cfg: client.Config{}},
		"short timeout":    {cfg: client.Config{Brokers: []string{"127.0.0.1:1"}, DeliveryTimeout: time.Millisecond}},
		"negative buffer":  {cfg: client.Config{Brokers: []string{"127.0.0.1:1"}, MaxBufferedEvents: -1}},
		"leader acks":      {cfg: client.Config{Brokers: []string{"127.0.0.1:1"}}, opts: []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		"not idempotent":   {cfg: client.Config{Brokers: []string{"127.0.0.1:1"}}, opts: []kgo.Opt{kgo.DisableIdempotentWrite()}},
		"source too long.": {cfg: client.Config{Brokers: []string{"127.0.0.1:1"}, Source: string(make([]byte, 200))}},
	} {
		if c, err := client.New(tc.cfg, tc.opts...); err == nil {
			_ = c.Close(context.Background())
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestIDsAreStableAcrossResend: an event whose delivery times out comes
// back through OnError with the id Send assigned, and resending it delivers
// it once under that id.
func TestIDsAreStableAcrossResend(t *testing.T) {
	addr, port := deadBroker(t)
	failed := make(chan *schemas.Event, 10)
	c := newClient(t, client.Config{Brokers: []string{addr}, DeliveryTimeout: time.Second,
		OnError: func(ev *schemas.Event, err error) {
			if !errors.Is(err, kgo.ErrRecordTimeout) {
				t.Errorf("OnError err = %v, want a record timeout", err)
			}
			failed <- ev
		}})
	ctx := context.Background()
	assigned := map[string]bool{}
	for i := range 5 {
		ev := event(i)
		if err := c.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if _, err := ulid.ParseStrict(ev.EventID); err != nil {
			t.Fatalf("assigned event_id %q is not a ULID: %v", ev.EventID, err)
		}
		assigned[ev.EventID] = true
	}
	var back []*schemas.Event
	for len(back) < 5 {
		select {
		case ev := <-failed:
			if !assigned[ev.EventID] {
				t.Fatalf("OnError got event_id %q, not one Send assigned", ev.EventID)
			}
			back = append(back, ev)
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of 5 events failed to OnError; stats %+v", len(back), c.Stats())
		}
	}
	if s := c.Stats(); s.Failed != 5 || s.Buffered != 0 || s.Acked != 0 {
		t.Fatalf("stats after timeouts = %+v", s)
	}

	// The broker comes up; the same events are resent unchanged, again
	// after each timeout, until the client has reconnected.
	_, brokers := cluster(t, port)
	deadline := time.After(20 * time.Second)
	for _, ev := range back {
		if err := c.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for c.Stats().Acked < 5 {
		select {
		case ev := <-failed:
			if !assigned[ev.EventID] {
				t.Fatalf("OnError got event_id %q, not one Send assigned", ev.EventID)
			}
			if err := c.Send(ctx, ev); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the resent events were not acknowledged; stats %+v", c.Stats())
		}
	}
	got := consume(t, brokers, 5)
	for id := range assigned {
		if got[id] == nil {
			t.Errorf("event %s was not delivered after the resend", id)
		}
	}
	if s := c.Stats(); s.Acked != 5 || s.Sent != 5+s.Failed || s.Buffered != 0 {
		t.Fatalf("stats after the resend = %+v, want 5 acked and one send per failure", s)
	}
}

// TestBackpressure: with the broker unreachable, the buffer fills to
// MaxBufferedEvents; TrySend then fails fast, Send waits for its context,
// and Close fails the buffered events to OnError.
func TestBackpressure(t *testing.T) {
	addr, _ := deadBroker(t)
	var mu sync.Mutex
	var failed []string
	c, err := client.New(client.Config{Brokers: []string{addr}, Topic: testTopic, MaxBufferedEvents: 4,
		OnError: func(ev *schemas.Event, err error) {
			if !errors.Is(err, kgo.ErrClientClosed) {
				t.Errorf("OnError err = %v, want kgo.ErrClientClosed", err)
			}
			mu.Lock()
			failed = append(failed, ev.EventID)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := c.TrySend(event(i)); err != nil {
			t.Fatalf("TrySend %d: %v", i, err)
		}
	}
	if err := c.TrySend(event(4)); !errors.Is(err, client.ErrFull) {
		t.Fatalf("TrySend on a full buffer: %v, want ErrFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Send(ctx, event(5)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on a full buffer: %v, want the context's deadline", err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Fatalf("Send on a full buffer returned after %v, want it to block", waited)
	}
	if s := c.Stats(); s != (client.Stats{Sent: 4, Buffered: 4}) {
		t.Fatalf("stats with a full buffer = %+v", s)
	}

	// A Send blocked on the full buffer returns ErrClosed once Close starts.
	blocked := make(chan error, 1)
	go func() { blocked <- c.Send(context.Background(), event(6)) }()
	time.Sleep(50 * time.Millisecond)

	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	if err := c.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with an unreachable broker: %v, want the flush deadline", err)
	}
	if err := <-blocked; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("blocked Send after Close: %v, want ErrClosed", err)
	}
	if s := c.Stats(); s != (client.Stats{Sent: 4, Failed: 4}) {
		t.Fatalf("stats after Close = %+v, want the 4 buffered failed", s)
	}
	mu.Lock()
	if len(failed) != 4 {
		t.Errorf("OnError saw %d events, want 4", len(failed))
	}
	mu.Unlock()
	if err := c.TrySend(event(7)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("TrySend after Close: %v, want ErrClosed", err)
	}
	if err := c.Flush(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseFlushes: Close delivers what is buffered, even with a long
// linger, before it returns.
func TestCloseFlushes(t *testing.T) {
	_, brokers := cluster(t, 0)
	c, err := client.New(client.Config{Brokers: brokers, Topic: testTopic, Linger: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := c.TrySend(event(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s != (client.Stats{Sent: 20, Acked: 20}) {
		t.Fatalf("stats after Close = %+v, want 20 acked", s)
	}
	consume(t, brokers, 20)
}

// TestConcurrentSend: many goroutines share one client and a small buffer.
func TestConcurrentSend(t *testing.T) {
	_, brokers := cluster(t, 0)
	c := newClient(t, client.Config{Brokers: brokers, MaxBufferedEvents: 16})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if err := c.Send(context.Background(), event(g*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s != (client.Stats{Sent: 800, Acked: 800}) {
		t.Fatalf("stats = %+v, want 800 acked", s)
	}
	consume(t, brokers, 800)
}

func BenchmarkSend(b *testing.B) {
	_, brokers := cluster(b, 0)
	c := newClient(b, client.Config{Brokers: brokers})
	ctx := context.Background()
	value, _ := json.Marshal(event(0))
	b.SetBytes(int64(len(value)) + 90) // plus the assigned id, source and time
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := c.Send(ctx, event(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
