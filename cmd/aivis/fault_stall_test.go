package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFaultStalledReplica freezes an aggregator (SIGSTOP: a long GC pause,
// a frozen VM, a throttled container) with open windows and unwritten
// events, long enough for the group to give its partitions to another
// replica, which re-reads them from the committed offsets and writes their
// windows. Then the frozen replica resumes (SIGCONT) with its stale state:
// it must not write any of it, since the new owner already counted those
// events.
func TestFaultStalledReplica(t *testing.T) {
	f, _ := faultSetup(t)
	f.migrate()
	a := f.startAggregator("a")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.produce(12, 6000, 24*time.Second) }()
	store := openStore(t, f.ctx, f.chAddr, f.db)
	deadline := time.Now().Add(60 * time.Second)
	for storedEvents(t, f.ctx, store) < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("a stored no events within 60 s; log:\n%s", f.log("a"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Log("SIGSTOP a")
	b := f.startAggregator("b")
	// The group moves a's partitions to b once a's session (6 s) expires;
	// b then catches up on them and writes their windows.
	deadline = time.Now().Add(60 * time.Second)
	for !strings.Contains(f.fullLog("b"), "partition state loaded") {
		if time.Now().After(deadline) {
			t.Fatalf("b was given no partitions within 60 s; log:\n%s", f.log("b"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Log("SIGCONT a")
	wg.Wait()
	f.check(90 * time.Second)
	if t.Failed() {
		t.Logf("log of a:\n%s", f.log("a"))
	}
	// Either a's client noticed first and dropped the partitions, or a
	// flush was refused: say which.
	t.Logf("a refused %d flushes after it resumed", strings.Count(f.fullLog("a"), "not writing a flush"))
	f.stop(a)
	f.stop(b)
}

// fullLog is the whole log of the process called name.
func (f *faultEnv) fullLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.logDir, name+".log"))
	return string(b)
}
