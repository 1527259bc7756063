package ingest

import (
	"net/http"
)

// Request error codes: the "code" member of every error response. They are
// part of the API; add new ones, never rename.
const (
	codeMethodNotAllowed     = "method_not_allowed"     // 405: use POST
	codeNotFound             = "not_found"              // 404: no such path
	codeUnknownAdapter       = "unknown_adapter"        // 404: no adapter of that name
	codeUnauthorized         = "unauthorized"           // 401: token missing or unknown
	codeUnsupportedMediaType = "unsupported_media_type" // 415: Content-Encoding
	codeInvalidParameter     = "invalid_parameter"      // 400: e.g. partial=maybe
	codeInvalidJSON          = "invalid_json"           // 400: malformed, empty, or no events
	codeUnreadableBody       = "unreadable_body"        // 400: the body could not be read
	codeBodyTooLarge         = "body_too_large"         // 413: max_body_bytes
	codeTooManyEvents        = "too_many_events"        // 413: max_events_per_request, burst or daily quota
	codeEventTooLarge        = "event_too_large"        // 413: larger than the Kafka topic accepts
	codeInvalidEvent         = "invalid_event"          // 422 (202 in partial mode): see errors[]
	codeOutOfScope           = CodeOutOfScope           // 403: a scoped token reported for another source or team; see errors[]
	codeRateLimited          = "rate_limited"           // 429: rate_events_per_second
	codeQuotaExceeded        = "quota_exceeded"         // 429: max_events_per_day
	codeOverloaded           = "overloaded"             // 503: max_inflight_requests
	codeKafkaUnavailable     = "kafka_unavailable"      // 503: not acknowledged in time
	codeBadRequest           = "bad_request"            // any other 4xx
	codeInternal             = "internal"               // any other 5xx
)

// The "code" member of errors[] is the problem code that schemas, the
// adapters, package otlp or the decoders in this package set where they
// found the problem: schemas.CodeRequired, CodeUnknownField,
// CodeInvalidType, CodeOutOfRange, CodeTooLarge, CodeInvalidValue,
// CodeDuplicateKey or CodeInvalidUTF8.

// Routes, the route label of aivis_ingest_requests_total; adapters have
// "adapter:" and their name.
const (
	routeEvents   = "events"
	routeTraces   = "traces"
	routeMetrics  = "metrics"
	routeAdapters = "adapters" // a name that no adapter has
	routeOther    = "other"    // a path that serves nothing
)

// notFound answers paths that serve nothing.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.respond(w, routeOther, http.StatusNotFound, Response{Code: codeNotFound,
		Message: "nothing is served at " + r.URL.Path + "; POST events to " + Path + ", provider usage reports to " + AdaptersPath + "<name>, OTLP traces to " + TracesPath + " or OTLP metrics to " + MetricsPath})
}
