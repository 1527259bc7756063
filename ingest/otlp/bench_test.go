package otlp

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
)

func benchInput(b *testing.B) (jsonBody, protoBody []byte) {
	jsonBody, err := os.ReadFile(filepath.Join("testdata", "mixed_batch", "input.json"))
	if err != nil {
		b.Fatal(err)
	}
	td, err := Decode(jsonBody, JSON)
	if err != nil {
		b.Fatal(err)
	}
	protoBody, err = proto.Marshal(td)
	if err != nil {
		b.Fatal(err)
	}
	return jsonBody, protoBody
}

// BenchmarkDecodeConvert measures the per-request work of POST /v1/traces
// before Kafka: decoding an export of 8 spans (4 with usage) and converting it.
func BenchmarkDecodeConvert(b *testing.B) {
	jsonBody, protoBody := benchInput(b)
	for _, c := range []struct {
		name string
		body []byte
		f    Format
	}{{"json", jsonBody, JSON}, {"protobuf", protoBody, Protobuf}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				td, err := Decode(c.body, c.f)
				if err != nil {
					b.Fatal(err)
				}
				if res := Convert(td); len(res.Events) != 2 {
					b.Fatalf("got %d events", len(res.Events))
				}
			}
		})
	}
}
