package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	m := New(&bytes.Buffer{}, "rerate", time.Second)
	m.now, m.start = func() time.Time { return now }, t0
	m.Phase("pricing", "events", 5000)
	now = t0.Add(2 * time.Second)
	m.Add(1200)
	if got, want := m.Line(), "rerate: pricing 1,200 of 5,000 events (24.0%), 600 events/s, about 6.3s left, 2s elapsed"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	m.Phase("writing", "rows", 0)
	now = now.Add(10 * time.Second)
	m.Set(2_500_000)
	if got, want := m.Line(), "rerate: writing 2,500,000 rows, 250,000 rows/s, 12s elapsed"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}

func TestStartPrintsUntilStop(t *testing.T) {
	var out syncBuffer
	m := New(&out, "export", 10*time.Millisecond)
	m.Phase("", "rows", 0)
	m.Start()
	m.Add(7)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "export: 7 rows") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m.Stop()
	m.Stop() // twice is fine
	got := out.String()
	if !strings.Contains(got, "export: 7 rows") {
		t.Fatalf("no progress line in %q", got)
	}
	time.Sleep(30 * time.Millisecond)
	if out.String() != got {
		t.Error("lines after Stop")
	}
}

func TestNilMeterIsQuiet(t *testing.T) {
	m := New(nil, "verify", 0)
	if m != nil {
		t.Fatal("New(nil) is not nil")
	}
	m.Phase("x", "records", 3)
	m.Add(1)
	m.Set(2)
	m.Start()
	m.Stop()
	if m.Line() != "" || m.Elapsed() != 0 {
		t.Error("a nil meter said something")
	}
}

func TestEnabled(t *testing.T) {
	var b bytes.Buffer
	if Enabled(false, false, &b) {
		t.Error("on by default for a buffer")
	}
	if !Enabled(true, true, &b) {
		t.Error("--progress did not switch it on")
	}
	if Enabled(false, true, &b) {
		t.Error("--progress=false did not switch it off")
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}
