package bus

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

// HideHeaderSecrets returns hs with the value of every header whose name
// is a credential's (schemas.CredentialName: Authorization, X-Api-Key,
// Cookie, ...) replaced by its schemas.APIKeyID, as labels are: a producer
// writing the raw topic directly may forward a request's headers, and
// aivis passes a record's headers on. hs itself is returned when it holds
// no such header, a copy otherwise.
func HideHeaderSecrets(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for i, h := range hs {
		if !schemas.CredentialName(h.Key) {
			continue
		}
		if out == nil {
			out = append([]kgo.RecordHeader(nil), hs...)
		}
		if len(h.Value) > 0 {
			out[i].Value = []byte(schemas.HashKey(string(h.Value)))
		}
	}
	if out == nil {
		return hs
	}
	return out
}
