package otlp

import (
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/aivis-dev/aivis/schemas"
)

// Attribution and data movement attributes, read from the resource and
// then the span (the span's win). enduser.id is OpenTelemetry's (now
// deprecated) end-user attribute, user.id its successor; aivis.end_user
// and aivis.tags are aivis's own. Tags may be a string array or one
// comma-separated string. The provider region is aivis.provider_region, or
// else the region the endpoint (server.address) names; cloud.region is not
// read: it says where the instrumented service runs, not the provider.
const (
	attrEndUser       = "aivis.end_user"
	attrEndUserOTel   = "enduser.id"
	attrUserID        = "user.id"
	attrTags          = "aivis.tags"
	attrServerAddress = "server.address"
	attrRegion        = "aivis.provider_region"
	attrRequestSize   = "http.request.body.size"
	attrResponseSize  = "http.response.body.size"
)

// attribution is what the attributes above say about one span.
type attribution struct {
	endUser, endpoint, region string
	tags                      []string
	requestBytes              *int64
	responseBytes             *int64
}

// attributionOf reads kvs over base: a value kvs sets replaces base's.
func attributionOf(base attribution, kvs []*commonpb.KeyValue) attribution {
	a := base
	user := ""
	for _, kv := range kvs {
		v := kv.GetValue()
		switch kv.GetKey() {
		case attrEndUser:
			if s := stringOf(v); s != "" {
				a.endUser = s
			}
		case attrEndUserOTel, attrUserID:
			if s := stringOf(v); s != "" && user == "" {
				user = s
			}
		case attrTags:
			if tags := tagsOf(v); len(tags) > 0 {
				a.tags = tags
			}
		case attrServerAddress:
			if s := stringOf(v); s != "" {
				a.endpoint = s
			}
		case attrRegion:
			if s := stringOf(v); s != "" {
				a.region = s
			}
		case attrRequestSize:
			if n, ok := sizeOf(v); ok {
				a.requestBytes = &n
			}
		case attrResponseSize:
			if n, ok := sizeOf(v); ok {
				a.responseBytes = &n
			}
		}
	}
	if user != "" && !hasAttr(kvs, attrEndUser) {
		a.endUser = user
	}
	return a
}

func tagsOf(v *commonpb.AnyValue) []string {
	var raw []string
	if arr := v.GetArrayValue(); arr != nil {
		for _, x := range arr.GetValues() {
			raw = append(raw, x.GetStringValue())
		}
	} else {
		raw = strings.Split(v.GetStringValue(), ",")
	}
	var out []string
	for _, t := range raw {
		if t = strings.TrimSpace(t); t != "" && len(t) <= 128 && len(out) < 16 {
			out = append(out, t)
		}
	}
	return out
}

func sizeOf(v *commonpb.AnyValue) (int64, bool) {
	n, ok := v.GetValue().(*commonpb.AnyValue_IntValue)
	if !ok || n.IntValue < 0 || n.IntValue > schemas.MaxBytes {
		return 0, false
	}
	return n.IntValue, true
}

// apply sets a on e; the region falls back to the one the endpoint names.
func (a attribution) apply(e *schemas.Event) {
	e.EndUser, e.Tags, e.ProviderEndpoint = truncate(a.endUser, 256), a.tags, truncate(a.endpoint, 256)
	e.RequestBytes, e.ResponseBytes = a.requestBytes, a.responseBytes
	e.ProviderRegion = truncate(a.region, 64)
	if e.ProviderRegion == "" {
		e.ProviderRegion = schemas.RegionOfEndpoint(a.endpoint)
	}
}
