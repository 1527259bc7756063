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
	req := &adapterRequest{jsonRequest: jsonRequest{s: s, routeLabel: routeAdapters}, adapterName: r.PathValue("name")}
	if a, ok := adapters.Lookup(req.adapterName); ok {
		req.adapter, req.routeLabel = a, "adapter:"+a.Name()
	}
	s.accept(w, r, req)
}

// adapterRequest is a POST /v1/adapters/{name}: envelopes that adapter
// normalizes into events, answered like /v1/events.
type adapterRequest struct {
	jsonRequest
	adapterName string
	adapter     adapters.Adapter // nil when no adapter has that name
}

func (a *adapterRequest) prepare(r *http.Request) (bool, *refusal) {
	partial, ref := a.jsonRequest.prepare(r)
	if ref == nil && a.adapter == nil {
		ref = &refusal{http.StatusNotFound, codeUnknownAdapter, fmt.Sprintf(
			"no usage adapter named %q; post to %s<name> with one of: %s", a.adapterName, AdaptersPath, strings.Join(adapters.Names(), ", "))}
	}
	return partial, ref
}

// parse splits the body into envelopes and normalizes each. Problems carry
// the envelope's index; a normalization problem is named by its envelope
// field path (e.g. "response.usage.input_tokens").
func (a *adapterRequest) parse(body []byte) ([]item, *refusal) {
	var items []item
	ref := eachValue(body, a.framing, a.s.lim.maxEvents, "envelope", func(raw json.RawMessage) {
		items = append(items, normalize(a.adapter, raw))
	})
	return items, ref
}

// normalize turns one envelope into an event; raw is a syntactically valid
// JSON value.
func normalize(a adapters.Adapter, raw []byte) item {
	problem := func(code, msg string) item {
		return item{probs: []schemas.FieldError{{Code: code, Message: msg}}}
	}
	if raw[0] != '{' {
		return problem(schemas.CodeInvalidType, "an envelope must be a JSON object, got "+jsonKind(raw[0]))
	}
	env, err := adapters.DecodeFor(a, raw)
	if verr := (*schemas.ValidationError)(nil); errors.As(err, &verr) {
		return item{probs: verr.Problems}
	}
	if err != nil {
		code := schemas.CodeInvalidValue
		if eerr := (*adapters.EnvelopeError)(nil); errors.As(err, &eerr) {
			code = eerr.Code
		}
		return problem(code, err.Error())
	}
	ev, err := a.Normalize(env)
	var verr *schemas.ValidationError
	switch {
	case errors.As(err, &verr):
		return item{probs: verr.Problems}
	case err != nil:
		return problem(schemas.CodeInvalidValue, fmt.Sprintf("normalizing %s usage: %v", a.Name(), err))
	}
	return item{event: ev}
}
