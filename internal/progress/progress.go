// Package progress tells the operator of a long command (loadgen, rerate,
// verify, export) how far it has come: every interval a line on standard
// error with the phase, what is done of how much (where the total is
// known), the rate and the time left. The work calls Phase and Add as it
// goes; a goroutine started by Start prints, so that a phase waiting on a
// slow query still shows it is alive. A nil *Meter is quiet: every method
// does nothing, so code can take one without checking.
package progress

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often a meter prints.
const DefaultInterval = 2 * time.Second

// Meter counts the work of one command and prints its progress.
type Meter struct {
	w        io.Writer
	name     string
	interval time.Duration
	now      func() time.Time
	start    time.Time

	done atomic.Int64

	mu         sync.Mutex
	phase      string
	unit       string
	total      int64
	phaseStart time.Time
	stop       chan struct{}
	stopped    chan struct{}
}

// New returns a meter for the command name that prints to w every
// interval once started; nil when w is nil (quiet).
func New(w io.Writer, name string, interval time.Duration) *Meter {
	if w == nil {
		return nil
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	now := time.Now()
	return &Meter{w: w, name: name, interval: interval, now: time.Now, start: now, phaseStart: now, unit: "items"}
}

// Enabled says whether progress is shown: as --progress says when it was
// given (changed), else when stderr is a terminal.
func Enabled(flag, changed bool, stderr io.Writer) bool {
	if changed {
		return flag
	}
	return IsTerminal(stderr)
}

// IsTerminal says whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Phase starts a phase of the work: what it is, the unit it counts and
// how many it will count (0: unknown). The count starts again at zero.
func (m *Meter) Phase(phase, unit string, total int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phase, m.unit, m.total = phase, unit, total
	m.phaseStart = m.now()
	m.done.Store(0)
}

// Add counts n more units done.
func (m *Meter) Add(n int64) {
	if m != nil {
		m.done.Add(n)
	}
}

// Set says n units are done.
func (m *Meter) Set(n int64) {
	if m != nil {
		m.done.Store(n)
	}
}

// Start prints a line every interval until Stop.
func (m *Meter) Start() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stop != nil {
		return
	}
	m.stop, m.stopped = make(chan struct{}), make(chan struct{})
	go func(stop, stopped chan struct{}) {
		defer close(stopped)
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintln(m.w, m.Line())
			}
		}
	}(m.stop, m.stopped)
}

// Stop ends the printing; it returns once no line is being written.
func (m *Meter) Stop() {
	if m == nil {
		return
	}
	m.mu.Lock()
	stop, stopped := m.stop, m.stopped
	m.stop = nil
	m.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
}

// Line is the progress line: "rerate: pricing 1,200 of 5,000 events
// (24.0%), 600 events/s, about 7s left, 4s elapsed".
func (m *Meter) Line() string {
	if m == nil {
		return ""
	}
	m.mu.Lock()
	phase, unit, total, phaseStart := m.phase, m.unit, m.total, m.phaseStart
	m.mu.Unlock()
	now := m.now()
	done := m.done.Load()
	var b strings.Builder
	b.WriteString(m.name + ":")
	if phase != "" {
		b.WriteString(" " + phase)
	}
	fmt.Fprintf(&b, " %s", Count(done))
	if total > 0 {
		fmt.Fprintf(&b, " of %s %s (%.1f%%)", Count(total), unit, 100*float64(done)/float64(total))
	} else {
		b.WriteString(" " + unit)
	}
	secs := now.Sub(phaseStart).Seconds()
	if secs > 0 {
		rate := float64(done) / secs
		fmt.Fprintf(&b, ", %s %s/s", Count(int64(rate+0.5)), unit)
		if total > 0 && rate > 0 && done < total {
			left := time.Duration(float64(total-done) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", about %s left", Round(left))
		}
	}
	fmt.Fprintf(&b, ", %s elapsed", Round(now.Sub(m.start)))
	return b.String()
}

// Elapsed is the time since the meter was made.
func (m *Meter) Elapsed() time.Duration {
	if m == nil {
		return 0
	}
	return m.now().Sub(m.start)
}

// Round rounds d for people: to the second from ten seconds on, else to
// the tenth of a second, else to the millisecond.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// Count writes n with thousands separators: 1234567 → "1,234,567".
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
