package aggregate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// writesSink records the rows of each Write.
type writesSink struct{ writes [][]schemas.WindowRow }

func (w *writesSink) Write(_ context.Context, _ []schemas.StoredEvent, rows []schemas.WindowRow) error {
	w.writes = append(w.writes, append([]schemas.WindowRow(nil), rows...))
	return nil
}

func (w *writesSink) Emitted(context.Context, int32, time.Time) (map[int64]int64, error) {
	return nil, nil
}

func (w *writesSink) SeenIDs(context.Context, int32, int64, time.Time, func(string, time.Time)) (int, error) {
	return 0, nil
}

func (w *writesSink) StoredIDs(context.Context, int32, []string, time.Time, time.Time) (map[string]bool, error) {
	return nil, nil
}

// TestStageFlushesClosingWindowsInParts closes more rows than one flush
// takes: the stage writes them in several flushes, each within the bound,
// before it returns, and leaves no window open.
func TestStageFlushesClosingWindowsInParts(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialled; no group, so marks are dropped
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reg := prometheus.NewRegistry()
	sink := &writesSink{}
	cfg := testConfig()
	s := &Stage{cfg: cfg, cl: cl, sink: sink, engine: NewEngine(cfg), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		now: func() time.Time { return t0 }, metrics: newStageMetrics(reg), spend: newSpendMetrics(reg),
		epochs: map[int32]int32{}, assigned: map[int32]bool{}}
	s.engine.maxFlushRows = 5
	for p := range int32(2) {
		s.engine.Assign(p, schemas.PartitionHistory{}, t0)
		var in []Input
		for w := range 3 {
			for k := range 4 {
				id := fmt.Sprintf("p%d-w%d-k%d", p, w, k)
				in = append(in, Input{Offset: int64(len(in)), Event: ev(id, t0.Add(time.Duration(w)*time.Minute), "m", fmt.Sprint("t", k), 1, 1, 1)})
			}
		}
		s.engine.AddBatch(p, in, t0, nil)
	}
	if err := s.flushLocked(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	rows := 0
	for i, w := range sink.writes {
		if len(w) > 5 {
			t.Errorf("write %d: %d rows, want at most 5", i, len(w))
		}
		rows += len(w)
	}
	if rows != 2*3*4 || len(sink.writes) != 6 {
		t.Errorf("%d rows in %d writes, want 24 in 6 (one window each)", rows, len(sink.writes))
	}
	if st := s.engine.Stats(); st.OpenWindows != 0 || st.PendingEvents != 0 {
		t.Errorf("after the flush: %+v, want nothing open or pending", st)
	}
}
