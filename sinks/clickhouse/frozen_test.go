package clickhouse

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// frozenEnv, when set, makes TestFrozenInsertLandsNothing the process that
// gets frozen: it holds "address database" of the migrated test database.
const frozenEnv = "AIVIS_TEST_FROZEN_INSERT"

// TestFrozenInsertLandsNothing writes window rows under a 3-second deadline
// from a child process, which it freezes (SIGSTOP) just before the INSERT's
// last block goes out and resumes 6 seconds later, when the block goes out
// before the client could cancel anything. The aggregator counts on
// such a write not landing after its deadline, when another replica may
// own the partition; the frozen process cannot close its connection, so
// the server itself has to give the INSERT up.
func TestFrozenInsertLandsNothing(t *testing.T) {
	if spec := os.Getenv(frozenEnv); spec != "" {
		frozenChild(t, spec)
		return
	}
	s := openTest(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFrozenInsertLandsNothing$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), frozenEnv+"="+s.cfg.Addr+" "+s.cfg.Database)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
	})
	lines := bufio.NewScanner(out)
	var log []string
	for lines.Scan() {
		log = append(log, lines.Text())
		if lines.Text() == "sending" {
			break
		}
	}
	if len(log) == 0 || log[len(log)-1] != "sending" {
		t.Fatalf("the child never reached its INSERT's last block:\n%s", strings.Join(log, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		log = append(log, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, strings.Join(log, "\n"))
	}
	t.Logf("child:\n%s", strings.Join(log, "\n"))
	// The server may still be finishing an INSERT it has taken whole.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		var n uint64
		if err := s.conn.QueryRow(context.Background(), "SELECT count() FROM "+TableWindows).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d window rows landed after the writer's deadline, want none", n)
		}
	}
}

// frozenChild writes window rows under a deadline and reports, on stdout,
// when it is about to send the last block, and how the write ended.
func frozenChild(t *testing.T, spec string) {
	addr, db, _ := strings.Cut(spec, " ")
	cfg := DefaultConfig()
	cfg.Addr, cfg.Database = addr, db
	cfg.MaxRetries = 0
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	beforeSend = func() {
		fmt.Println("sending")
		time.Sleep(2 * time.Second) // frozen meanwhile
	}
	defer func() { beforeSend = func() {} }()
	// On resuming, the driver's cancellation at the deadline and the
	// last block race; the deadline here never fires, so the block
	// always wins, the worst case.
	ctx := lateContext{context.Background(), time.Now().Add(3 * time.Second)}
	err = s.Write(ctx, nil, testRows()[:3]) // one INSERT: January's rows
	fmt.Println("write:", err)
	if err == nil {
		t.Error("the write past its deadline succeeded")
	}
}

// lateContext has a deadline but never ends: a process that resumes after
// its deadline and sends before anything cancels it.
type lateContext struct {
	context.Context
	deadline time.Time
}

func (c lateContext) Deadline() (time.Time, bool) { return c.deadline, true }
