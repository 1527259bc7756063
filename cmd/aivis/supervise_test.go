package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/internal/bus"
)

// TestFailingActorStopsTheProcess runs `aivis enrich` whose ops endpoint
// cannot listen (the address is taken): that actor fails, and the process
// must stop its other actors and exit non-zero naming the actor and its
// error, not keep running without /metrics.
func TestFailingActorStopsTheProcess(t *testing.T) {
	cluster, brokers, err := bus.Embedded(3)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, aivisBinary(t), "enrich",
		"--kafka.brokers", strings.Join(brokers, ","), "--metrics_addr", taken.Addr().String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("aivis enrich = %v, want exit status 1; stderr:\n%s", err, stderr.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("aivis enrich did not stop by itself; stderr:\n%s", stderr.String())
	}
	want := "aivis enrich: ops: listening for /metrics on " + taken.Addr().String()
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}
