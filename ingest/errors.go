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
// CodeInvalidType, CodeOutOfRange, CodeTooLarge or CodeInvalidValue.

// statusCode is the code of an error response that names none, such as a
// *bodyError from a decodeFunc.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeInvalidJSON
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusNotFound:
		return codeUnknownAdapter
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return codeTooManyEvents
	case http.StatusUnsupportedMediaType:
		return codeUnsupportedMediaType
	case http.StatusUnprocessableEntity:
		return codeInvalidEvent
	case http.StatusTooManyRequests:
		return codeRateLimited
	case http.StatusServiceUnavailable:
		return codeKafkaUnavailable
	}
	if status >= 500 {
		return codeInternal
	}
	return codeBadRequest
}

// fail answers an error with its code and message.
func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	s.respond(w, status, Response{Code: code, Message: msg})
}

// notFound answers paths that serve nothing.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, http.StatusNotFound, codeNotFound, "nothing is served at "+r.URL.Path+"; POST events to "+Path+", provider usage reports to "+AdaptersPath+"<name>, or OTLP traces to "+TracesPath)
}

// limited answers a request refused by a producer's limit.
func (s *Server) limited(w http.ResponseWriter, lerr *limitError, rejected int) {
	if lerr.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(lerr.retryAfter))
	}
	s.respond(w, lerr.status, Response{Rejected: rejected, Code: lerr.code, Message: lerr.msg, Producer: lerr.producer, Limit: lerr.limit})
}
