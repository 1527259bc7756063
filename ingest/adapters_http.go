package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aivis-dev/aivis/ingest/adapters"
	"github.com/aivis-dev/aivis/schemas"
)

// AdaptersPath prefixes the adapter routes, POST /v1/adapters/{name}.
const AdaptersPath = "/v1/adapters/"

// serveAdapter accepts provider usage envelopes for one adapter; the body is
// framed like /v1/events and every envelope becomes one event.
func (s *Server) serveAdapter(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.serveBatch(w, r, func(body []byte, f framing, headerKey string) (batch, error) {
		a, ok := adapters.Lookup(name)
		if !ok {
			return batch{}, &bodyError{http.StatusNotFound, fmt.Sprintf(
				"no usage adapter named %q; post to %s<name> with one of: %s", name, AdaptersPath, strings.Join(adapters.Names(), ", "))}
		}
		return decodeEnvelopes(body, f, s.lim, headerKey, a)
	})
}

// decodeEnvelopes splits body into envelopes, normalizes each with a and
// adds the resulting events to a batch as decodeBody would, so that
// validation, API key handling, size limits and encoding are the same as on
// /v1/events. Errors carry the envelope's index; a normalization problem is
// named by its envelope field path (e.g. "response.usage.input_tokens").
func decodeEnvelopes(body []byte, f framing, lim limits, headerKey string, a adapters.Adapter) (batch, error) {
	var b batch
	err := eachValue(body, f, lim.maxEvents, "envelope", func(raw json.RawMessage) { b.addEnvelope(raw, lim, headerKey, a) })
	return b, err
}

// addEnvelope normalizes one envelope; raw is a syntactically valid JSON value.
func (b *batch) addEnvelope(raw []byte, lim limits, headerKey string, a adapters.Adapter) {
	fail := func(probs ...schemas.FieldError) {
		i := b.total
		b.total++
		b.reject(i, probs...)
	}
	if raw[0] != '{' {
		fail(schemas.FieldError{Code: schemas.CodeInvalidType, Message: "an envelope must be a JSON object, got " + jsonKind(raw[0])})
		return
	}
	env, err := adapters.DecodeFor(a, raw)
	if err != nil {
		code := schemas.CodeInvalidValue
		if eerr := (*adapters.EnvelopeError)(nil); errors.As(err, &eerr) {
			code = eerr.Code
		}
		fail(schemas.FieldError{Code: code, Message: err.Error()})
		return
	}
	ev, err := a.Normalize(env)
	var verr *schemas.ValidationError
	switch {
	case errors.As(err, &verr):
		fail(verr.Problems...)
		return
	case err != nil:
		fail(schemas.FieldError{Code: schemas.CodeInvalidValue, Message: fmt.Sprintf("normalizing %s usage: %v", a.Name(), err)})
		return
	}
	value, err := json.Marshal(ev)
	if err != nil {
		fail(schemas.FieldError{Code: schemas.CodeInvalidValue, Message: "encoding the normalized event: " + err.Error()})
		return
	}
	// The event goes through the same decoding as one posted to /v1/events.
	b.add(value, lim, headerKey)
}
