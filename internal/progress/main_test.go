package progress

import (
	"testing"

	"go.uber.org/goleak"
)

// A stopped meter leaves no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
