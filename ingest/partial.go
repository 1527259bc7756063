package ingest

import (
	"fmt"
	"net/http"
	"strconv"
)

// PartialHeader asks, like the query parameter partial=true, for partial
// acceptance: the valid events of a request are produced and the invalid
// ones reported, instead of rejecting the whole request.
const PartialHeader = "X-AIVIS-Partial"

// partialMode reads the partial acceptance switch: the query parameter
// partial when present, else PartialHeader; absent is false.
func partialMode(r *http.Request) (bool, error) {
	v, src := r.URL.Query().Get("partial"), "query parameter partial"
	if !r.URL.Query().Has("partial") {
		v, src = r.Header.Get(PartialHeader), "header "+PartialHeader
	}
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s is %q; send true or false (or leave it out for all-or-nothing requests)", src, v)
	}
	return on, nil
}
