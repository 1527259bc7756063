package obs

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPprofOnlyWhenAsked: profiles expose internals, so they are served
// only behind the pprof switch.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		rec := httptest.NewRecorder()
		handler(NewRegistry(), NewReadiness(), on).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("pprof=%v: /debug/pprof/ answered %d, want %d", on, rec.Code, want)
		}
	}
}
