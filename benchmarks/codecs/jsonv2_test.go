//go:build goexperiment.jsonv2

package codecs

import (
	jsonv2 "encoding/json/v2"

	"github.com/aivis-dev/aivis/schemas"
)

// encoding/json/v2 refuses repeated names and invalid UTF-8 by default and
// matches names exactly; with unknown members refused it keeps aivis's
// rules by itself.
func init() {
	codecs = append(codecs, codec{
		name: "json-v2", strict: true,
		decode: func(data []byte, e *schemas.Event) error {
			*e = schemas.Event{}
			return jsonv2.Unmarshal(data, e, jsonv2.RejectUnknownMembers(true))
		},
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) {
			b, err := jsonv2.Marshal(e, jsonv2.Deterministic(true))
			return append(buf, b...), err
		},
	})
}
