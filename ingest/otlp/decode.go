package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/aivis-dev/aivis/schemas"
)

// Format is the encoding of an OTLP/HTTP body.
type Format int

const (
	// Protobuf is binary protobuf, Content-Type application/x-protobuf.
	Protobuf Format = iota
	// JSON is the OTLP JSON encoding, Content-Type application/json.
	JSON
)

// ContentType is the Content-Type of a body in format f.
func (f Format) ContentType() string {
	if f == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// FormatOf returns the format a Content-Type header names; ok is false for
// anything but protobuf or JSON.
func FormatOf(contentType string) (f Format, ok bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return Protobuf, false
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return Protobuf, true
	case "application/json":
		return JSON, true
	}
	return Protobuf, false
}

// Trace and span ids have fixed lengths in bytes.
const (
	traceIDLen = 16
	spanIDLen  = 8
)

// Decode parses the body of an OTLP/HTTP trace export (an
// ExportTraceServiceRequest). The request message and TracesData have the
// same fields, so the body is decoded into TracesData, which spares ingest
// the gRPC packages that the collector service package pulls in.
//
// OTLP JSON writes trace and span ids as hex where the protobuf JSON
// mapping expects base64; see fixJSONIDs. Unknown fields are ignored in
// both encodings, as the OTLP specification requires of receivers.
func Decode(body []byte, f Format) (*tracepb.TracesData, error) {
	td := &tracepb.TracesData{}
	if f == JSON {
		// protojson refuses repeated keys, but without a path, and drops
		// keys that differ from a field's name only in case.
		if probs := schemas.CheckJSONFolded(body); len(probs) > 0 {
			return nil, &JSONError{Problems: probs}
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, td); err != nil {
			return nil, fmt.Errorf("decoding the OTLP JSON trace export (an ExportTraceServiceRequest in the OTLP JSON encoding): %w", err)
		}
		fixJSONIDs(td)
		return td, nil
	}
	if err := proto.Unmarshal(body, td); err != nil {
		return nil, fmt.Errorf("decoding the OTLP protobuf trace export (an ExportTraceServiceRequest; check that Content-Type matches the body): %w", err)
	}
	return td, nil
}

// JSONError lists, by JSON path, the keys and strings of an OTLP JSON
// export that cannot be read as sent: a key repeated in one object (also
// in another case) or text that is not valid UTF-8.
type JSONError struct {
	Problems []schemas.FieldError
}

func (e *JSONError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Error()+" ("+p.Code+")")
	}
	return "decoding the OTLP JSON trace export: " + strings.Join(parts, "; ")
}

// fixJSONIDs turns ids that protojson decoded as base64 back into the bytes
// that their hex text names. protojson reads a 32-digit hex trace id as
// base64, giving 24 bytes; encoding those bytes as base64 again gives back
// the very text that was sent (32 characters hold exactly 24 bytes, with
// no padding and no spare bits), which is then decoded as hex. Ids that
// already have their proper length were sent as base64 (as older OTLP JSON
// senders did) and are kept. Anything else is left as it is and fails the
// length checks of Convert.
func fixJSONIDs(td *tracepb.TracesData) {
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if sp == nil {
					continue
				}
				sp.TraceId = fixID(sp.TraceId, traceIDLen)
				sp.SpanId = fixID(sp.SpanId, spanIDLen)
				sp.ParentSpanId = fixID(sp.ParentSpanId, spanIDLen)
				for _, l := range sp.GetLinks() {
					if l != nil {
						l.TraceId = fixID(l.TraceId, traceIDLen)
						l.SpanId = fixID(l.SpanId, spanIDLen)
					}
				}
			}
		}
	}
}

// fixID returns the n-byte id whose hex text protojson decoded into b.
func fixID(b []byte, n int) []byte {
	if len(b) != n*3/2 {
		return b
	}
	text := base64.StdEncoding.EncodeToString(b)
	id, err := hex.DecodeString(text)
	if err != nil || len(id) != n {
		return b
	}
	return id
}

// Response encodes an ExportTraceServiceResponse in format f: empty for a
// full success, with partial_success set when spans were rejected or msg
// carries a warning.
func Response(f Format, rejectedSpans int64, msg string) []byte {
	if f == JSON {
		type partial struct {
			RejectedSpans int64  `json:"rejectedSpans,string,omitempty"`
			ErrorMessage  string `json:"errorMessage,omitempty"`
		}
		var resp struct {
			PartialSuccess *partial `json:"partialSuccess,omitempty"`
		}
		if rejectedSpans != 0 || msg != "" {
			resp.PartialSuccess = &partial{RejectedSpans: rejectedSpans, ErrorMessage: msg}
		}
		return mustJSON(resp)
	}
	if rejectedSpans == 0 && msg == "" {
		return []byte{}
	}
	// ExportTracePartialSuccess: rejected_spans = 1 (int64), error_message = 2.
	var inner []byte
	if rejectedSpans != 0 {
		inner = protowire.AppendTag(inner, 1, protowire.VarintType)
		inner = protowire.AppendVarint(inner, uint64(rejectedSpans))
	}
	if msg != "" {
		inner = protowire.AppendTag(inner, 2, protowire.BytesType)
		inner = protowire.AppendString(inner, msg)
	}
	// ExportTraceServiceResponse: partial_success = 1.
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(out, inner)
}

// gRPC status codes used in error bodies.
const (
	CodeInvalidArgument   int32 = 3
	CodePermissionDenied  int32 = 7
	CodeResourceExhausted int32 = 8
	CodeUnimplemented     int32 = 12
	CodeUnavailable       int32 = 14
	CodeUnauthenticated   int32 = 16
)

// Status encodes a google.rpc.Status, the body OTLP/HTTP prescribes for
// errors, in format f.
func Status(f Format, code int32, msg string) []byte {
	if f == JSON {
		return mustJSON(struct {
			Code    int32  `json:"code"`
			Message string `json:"message,omitempty"`
		}{code, msg})
	}
	// google.rpc.Status: code = 1 (int32), message = 2.
	var out []byte
	if code != 0 {
		out = protowire.AppendTag(out, 1, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(int64(code)))
	}
	if msg != "" {
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendString(out, msg)
	}
	return out
}

// mustJSON encodes values made of strings and integers, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}

// jsonNumber keeps a finite float as a number and anything else as text,
// since JSON has no NaN or infinity.
func jsonNumber(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return v
}
