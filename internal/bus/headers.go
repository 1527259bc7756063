package bus

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
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

// HeaderBytes is the size of a record's headers.
func HeaderBytes(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// TooLarge reports whether err refuses a record for its size: the client
// checks each record against its batch size (1,000,012 bytes), the broker
// each batch against the topic's max.message.bytes.
func TooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}
