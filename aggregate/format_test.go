package aggregate

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/schemas"
)

func TestProtobufRecord(t *testing.T) {
	h := func(kv ...string) []kgo.RecordHeader {
		var hs []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	for _, c := range []struct {
		headers []kgo.RecordHeader
		want    bool
	}{
		{nil, false},
		{h(schemas.HeaderContentType, schemas.ContentTypeProtobuf), true},
		{h("traceparent", "x", "Content-Type", "application/x-protobuf"), true},
		{h("content-type", "application/json"), false},
		{h("content-type", "application/json", "content-type", "application/x-protobuf"), false},
		{h("content-typ", "application/x-protobuf"), false},
	} {
		if got := protobufRecord(&kgo.Record{Headers: c.headers}); got != c.want {
			t.Errorf("%v: %v, want %v", c.headers, got, c.want)
		}
	}
}
