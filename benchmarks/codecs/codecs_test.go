// Package codecs measures the JSON codecs aivis could use for its events
// against the one it has (schemas.Decoder and Event.AppendJSON): the
// standard library, encoding/json/v2 (GOEXPERIMENT=jsonv2, in
// jsonv2_test.go) and three maintained fast libraries. It is a module of
// its own so that those libraries stay out of aivis's dependencies.
//
//	go test -run '^$' -bench . -benchmem
//	GOEXPERIMENT=jsonv2 go test -run '^$' -bench . -benchmem
//
// Every codec must decode each sample to the event aivis's decoder makes
// and encode each enriched sample to an event that decodes back the same
// (TestCodecsAgree), or its figures would compare different work.
package codecs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"

	"github.com/aivis-dev/aivis/schemas"
)

// A codec decodes a raw event and encodes an enriched one. Its decode
// applies the codec's own rules; strict says whether they are aivis's
// (unknown members, repeated names, names differing only in case, invalid
// UTF-8 and trailing data all refused); the others accept more, so their
// figures are a lower bound on what reaching aivis's rules would cost.
type codec struct {
	name   string
	strict bool
	decode func(data []byte, e *schemas.Event) error
	encode func(buf []byte, e *schemas.Enriched) ([]byte, error)
}

// sonicAPI refuses unknown members and validates strings (it still takes
// invalid UTF-8), and copies them out of the input as the others do.
var sonicAPI = sonic.Config{DisallowUnknownFields: true, ValidateString: true, CopyString: true}.Froze()

var codecs = []codec{
	{
		name: "aivis", strict: true,
		decode: func() func([]byte, *schemas.Event) error {
			var d schemas.Decoder
			return d.Event
		}(),
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) { return e.AppendJSON(buf), nil },
	},
	{
		name: "encoding-json",
		decode: func(data []byte, e *schemas.Event) error {
			*e = schemas.Event{}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(e); err != nil {
				return err
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return errors.New("data after the event")
			}
			return nil
		},
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) {
			b, err := json.Marshal(e)
			return append(buf, b...), err
		},
	},
	{
		name: "sonic",
		decode: func(data []byte, e *schemas.Event) error {
			*e = schemas.Event{}
			return sonicAPI.Unmarshal(data, e)
		},
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) {
			b, err := sonic.ConfigStd.Marshal(e)
			return append(buf, b...), err
		},
	},
	{
		name: "go-json",
		decode: func(data []byte, e *schemas.Event) error {
			*e = schemas.Event{}
			return gojson.Unmarshal(data, e)
		},
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) {
			b, err := gojson.Marshal(e)
			return append(buf, b...), err
		},
	},
	{
		name: "segmentio",
		decode: func(data []byte, e *schemas.Event) error {
			*e = schemas.Event{}
			rest, err := segjson.Parse(data, e, segjson.DontMatchCaseInsensitiveStructFields)
			if err == nil && len(bytes.TrimSpace(rest)) > 0 {
				err = errors.New("data after the event")
			}
			return err
		},
		encode: func(buf []byte, e *schemas.Enriched) ([]byte, error) {
			return segjson.Append(buf, e, segjson.EscapeHTML|segjson.SortMapKeys)
		},
	},
}

// samples returns the records of a testdata file, one per line: 100 of
// loadgen's events as ingest writes them (raw.ndjson) and as enrich
// writes them (enriched.ndjson).
func samples(tb testing.TB, name string) [][]byte {
	tb.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil || len(out) == 0 {
		tb.Fatalf("reading testdata/%s: %d records, %v", name, len(out), err)
	}
	return out
}

// canonical is the event as aivis writes it, to compare decodes by.
func canonical(e *schemas.Event) string { return string(e.AppendJSON(nil)) }

func TestCodecsAgree(t *testing.T) {
	raw, enriched := samples(t, "raw.ndjson"), samples(t, "enriched.ndjson")
	var ref schemas.Decoder
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			for i, rec := range raw {
				var want, got schemas.Event
				if err := ref.Event(rec, &want); err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
				if err := c.decode(rec, &got); err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
				if canonical(&got) != canonical(&want) {
					t.Fatalf("sample %d decodes to\n%s\nwant\n%s", i, canonical(&got), canonical(&want))
				}
			}
			for i, rec := range enriched {
				var want, back schemas.Enriched
				if err := ref.Enriched(rec, &want); err != nil {
					t.Fatalf("enriched sample %d: %v", i, err)
				}
				out, err := c.encode(nil, &want)
				if err != nil {
					t.Fatalf("enriched sample %d: %v", i, err)
				}
				if err := ref.Enriched(out, &back); err != nil {
					t.Fatalf("enriched sample %d encodes to what aivis cannot read: %v\n%s", i, err, out)
				}
				if got, want := back.AppendJSON(nil), want.AppendJSON(nil); !bytes.Equal(got, want) {
					t.Fatalf("enriched sample %d encodes to\n%s\nwhich reads back as\n%s\nwant\n%s", i, out, got, want)
				}
			}
			if !c.strict {
				return
			}
			// aivis's rules, which a strict codec keeps by itself.
			for _, bad := range []string{
				`{"schema_version":"1","schema_version":"1"}`,
				`{"schema_version":"1","Schema_Version":"1"}`,
				`{"schema_version":"1","nope":1}`,
				"{\"schema_version\":\"\xff\"}",
				`{"schema_version":"1"} {}`,
			} {
				var e schemas.Event
				if c.decode([]byte(bad), &e) == nil {
					t.Errorf("%s accepted %q", c.name, bad)
				}
			}
		})
	}
}

// BenchmarkDecode decodes and validates loadgen's events, as enrich
// does with each raw record: ns/op is per event.
func BenchmarkDecode(b *testing.B) {
	raw := samples(b, "raw.ndjson")
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			var e schemas.Event
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.decode(raw[i], &e); err != nil {
					b.Fatal(err)
				}
				if err := e.Validate(); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(raw) {
					i = 0
				}
			}
		})
	}
	// What a codec that is not strict adds to reach aivis's rules.
	b.Run("checkjson", func(b *testing.B) {
		var e schemas.Event
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if probs := schemas.CheckJSON(raw[i], &e); len(probs) > 0 {
				b.Fatal(probs)
			}
			if i++; i == len(raw) {
				i = 0
			}
		}
	})
}

// BenchmarkEncode writes loadgen's enriched events, as enrich does for
// each output: ns/op is per event.
func BenchmarkEncode(b *testing.B) {
	recs := samples(b, "enriched.ndjson")
	events := make([]schemas.Enriched, len(recs))
	var d schemas.Decoder
	for i, rec := range recs {
		if err := d.Enriched(rec, &events[i]); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			var buf []byte
			var err error
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if buf, err = c.encode(buf[:0], &events[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(events) {
					i = 0
				}
			}
		})
	}
}
