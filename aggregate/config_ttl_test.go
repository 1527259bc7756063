package aggregate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aivis-dev/aivis/aggregate"
	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
)

// TestLateHorizonInsideEventsTTL: the bound on late_horizon follows the
// per-event table's TTL as the migrations write it, and a late_horizon
// beyond it is refused with the reason.
func TestLateHorizonInsideEventsTTL(t *testing.T) {
	migs, err := chsink.Migrations(chsink.CapabilitiesFor("26.1"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("TTL date + INTERVAL %d DAY", aggregate.EventsTTLDays)
	found := false
	for _, m := range migs {
		for _, st := range m.Statements {
			if strings.Contains(st, "CREATE TABLE IF NOT EXISTS "+chsink.TableEvents+" ") {
				found = found || strings.Contains(st, want)
			}
		}
	}
	if !found {
		t.Fatalf("no migration creates %s with %q; keep aggregate.EventsTTLDays equal to the table's TTL", chsink.TableEvents, want)
	}

	cfg := aggregate.DefaultConfig()
	cfg.LateHorizon = aggregate.MaxLateHorizon
	if err := cfg.Validate(); err != nil {
		t.Fatalf("late_horizon at its bound: %v", err)
	}
	cfg.LateHorizon = aggregate.MaxLateHorizon + time.Hour
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "late_horizon") || !strings.Contains(err.Error(), "400 days") {
		t.Fatalf("late_horizon beyond the events' TTL: got %v, want an error naming late_horizon and the 400 days", err)
	}
}
