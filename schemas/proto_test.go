package schemas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/timestamppb" // registers google/protobuf/timestamp.proto
)

// protoRoundTrip fails t where an enriched event that data decodes to as
// JSON does not come back the same from AppendProto and EnrichedProto, or
// where the official protobuf runtime, reading enriched_v1.proto, does not
// read AppendProto's bytes as exactly the message they encode.
func protoRoundTrip(t *testing.T, data []byte) {
	want, err := DecodeEnriched(data)
	if err != nil || !protoTime(want.Time) || !protoTime(want.EnrichedAt) || want.LabelsJSON != nil {
		return
	}
	if want.RawUsage != nil && !validJSON(want.RawUsage) {
		return
	}
	enc := want.AppendProto(nil)
	var d Decoder
	got := new(Enriched)
	// Twice into one value: the second decode reuses the first's memory.
	for range 2 {
		if err := d.EnrichedProto(enc, got); err != nil {
			t.Fatalf("%q: decoding AppendProto's %x: %v", data, enc, err)
		}
	}
	if w, g := protoComparable(want), protoComparable(got); !reflect.DeepEqual(w, g) {
		t.Fatalf("%q: round trip through protobuf\n got %+v\nwant %+v", data, g, w)
	}
	if fresh, err := DecodeEnrichedProto(enc); err != nil || !reflect.DeepEqual(protoComparable(fresh), protoComparable(got)) {
		t.Fatalf("%q: DecodeEnrichedProto gives %+v, %v", data, fresh, err)
	}
	if again := got.AppendProto(nil); !bytes.Equal(again, enc) {
		t.Fatalf("%q: encoding the decoded event gives other bytes\n%x\n%x", data, again, enc)
	}
	msg := dynamicpb.NewMessage(enrichedDescriptor(t))
	if err := (proto.UnmarshalOptions{}).Unmarshal(enc, msg); err != nil {
		t.Fatalf("%q: the protobuf runtime refuses AppendProto's %x: %v", data, enc, err)
	}
	if unknown := msg.GetUnknown(); len(unknown) > 0 {
		t.Fatalf("%q: fields enriched_v1.proto lacks: %x", data, unknown)
	}
	canonical, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical, enc) {
		t.Fatalf("%q: the protobuf runtime writes the message otherwise\n got %x\nwant %x", data, enc, canonical)
	}
	// LabelsAsJSON: the text Enriched would have kept, or the same map.
	d.LabelsAsJSON = true
	if err := d.EnrichedProto(enc, got); err != nil {
		t.Fatal(err)
	}
	if got.LabelsJSON != nil {
		var m map[string]string
		if err := json.Unmarshal(got.LabelsJSON, &m); err != nil || !reflect.DeepEqual(m, want.Labels) {
			t.Fatalf("%q: LabelsJSON %s, want %v", data, got.LabelsJSON, want.Labels)
		}
		if js := want.AppendJSON(nil); !bytes.Contains(js, append([]byte(`"labels":`), got.LabelsJSON...)) {
			t.Fatalf("%q: LabelsJSON %s is not what AppendJSON writes: %s", data, got.LabelsJSON, js)
		}
	} else if !reflect.DeepEqual(got.Labels, want.Labels) && len(want.Labels) > 0 {
		t.Fatalf("%q: labels %v, want %v", data, got.Labels, want.Labels)
	}
}

// protoTime reports whether a google.protobuf.Timestamp holds t.
func protoTime(t time.Time) bool {
	return t.IsZero() || (t.Unix() >= minTimestamp && t.Unix() <= maxTimestamp)
}

// protoComparable is e as protobuf carries it: times in UTC, empty
// collections as none, raw usage compact.
func protoComparable(e *Enriched) Enriched {
	c := *e
	c.Time, c.EnrichedAt = c.Time.UTC(), c.EnrichedAt.UTC()
	if c.Time.IsZero() {
		c.Time = time.Time{}
	}
	if c.EnrichedAt.IsZero() {
		c.EnrichedAt = time.Time{}
	}
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.Warnings) == 0 {
		c.Warnings = nil
	}
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if len(c.Pricing.Lines) == 0 {
		c.Pricing.Lines = nil
	}
	if len(c.RawUsage) == 0 {
		c.RawUsage = nil
	} else {
		c.RawUsage = []byte(strings.ToValidUTF8(string(appendCompact(nil, c.RawUsage)), "\uFFFD"))
	}
	if c.Usage != nil && len(c.Usage.ServerToolCalls) == 0 {
		u := *c.Usage
		u.ServerToolCalls = nil
		c.Usage = &u
	}
	return c
}

func TestProtoRoundTrip(t *testing.T) {
	for _, s := range codecSeeds(t) {
		protoRoundTrip(t, s)
	}
	// Every field set, and lengths that take more than one byte.
	e, err := DecodeEnriched(benchEnriched())
	if err != nil {
		t.Fatal(err)
	}
	e.Operation, e.ErrorType, e.ServiceTier, e.Streaming = "chat", "rate_limit", "priority", true
	e.ProviderCostUSD, e.Warnings, e.EndUser, e.Tags = "0.0125", []string{"w1", "w2"}, "user-1", []string{"a", "b"}
	e.RequestBytes, e.ResponseBytes, e.RequestCount = Int64(0), Int64(-1), Int64(3)
	e.ProviderRegion, e.ProviderEndpoint = "eu-west-1", "api.example.com"
	e.Usage.ServerToolCalls = map[string]int64{"web_search": 2, "code": 0}
	e.Usage.ProviderTotalTokens, e.Usage.RejectedPredictionTokens = Int64(1<<40), Int64(0)
	e.GPU = &GPUUsage{GPUModel: "H100", GPUUUID: "GPU-1", MIGProfile: "1g.10gb", Host: "h", Cluster: "c", Namespace: "n", Pod: "p", Container: "k",
		PID: 7, IntervalSeconds: 60, AllocatedSeconds: 59.5, BusySeconds: -0.0, MemoryBytes: 1 << 33, EnergyJoules: new(float64),
		PricingCategory: "on_demand", OwnerKind: "k8s_pod", OwnerID: "uid", MemoryMaxBytes: 1 << 34, ParentGPUUUID: "GPU-0", Attribution: "sole"}
	e.Owner.CostCenter = "cc-1"
	e.Flags = Flags{true, true, true, true, true, true}
	e.CostPicos = -5
	for i := range 8 {
		e.Pricing.Lines = append(e.Pricing.Lines, CostLine{Meter: fmt.Sprintf("meter-%d", i), Quantity: int64(i), UnitPrice: "1.25", CostPicos: int64(i) << 40})
	}
	e.Labels["long"] = strings.Repeat("x", 300)
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	protoRoundTrip(t, data)
}

func FuzzProtoRoundTrip(f *testing.F) {
	for _, s := range codecSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(protoRoundTrip)
}

// FuzzEnrichedProto holds EnrichedProto to the protobuf runtime on any
// bytes: it accepts what the runtime accepts, but for what it checks
// beyond (UTF-8 in map keys aside, JSON in raw_usage, timestamps, numbers
// JSON can hold), and what it accepts encodes again to what the runtime
// reads as the same message.
func FuzzEnrichedProto(f *testing.F) {
	for _, s := range codecSeeds(f) {
		if e, err := DecodeEnriched(s); err == nil && protoTime(e.Time) && protoTime(e.EnrichedAt) && (e.RawUsage == nil || validJSON(e.RawUsage)) {
			f.Add(e.AppendProto(nil))
		}
	}
	f.Add([]byte{0x0a, 0x80})
	f.Add([]byte{0x7a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		e := new(Enriched)
		err := d.EnrichedProto(data, e)
		msg := dynamicpb.NewMessage(enrichedDescriptor(t))
		rerr, panicked := runtimeUnmarshal(data, msg)
		if err != nil || panicked {
			return
		}
		if rerr != nil {
			t.Fatalf("%x: EnrichedProto takes what the protobuf runtime refuses: %v", data, rerr)
		}
		enc := e.AppendProto(nil)
		again := dynamicpb.NewMessage(enrichedDescriptor(t))
		if err := proto.Unmarshal(enc, again); err != nil {
			t.Fatalf("%x: re-encoded %x: %v", data, enc, err)
		}
		// EnrichedProto skips unknown fields, and Owner, Pricing and Flags
		// are values in Go: present and empty is absent.
		msg = dynamicpb.NewMessage(enrichedDescriptor(t))
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, msg); err != nil {
			t.Fatal(err)
		}
		// AppendProto writes raw_usage compact, as AppendJSON does.
		if fd := msg.Descriptor().Fields().ByName("raw_usage"); msg.Has(fd) {
			msg.Set(fd, protoreflect.ValueOfString(string(appendCompact(nil, []byte(msg.Get(fd).String())))))
		}
		for _, name := range []protoreflect.Name{"owner", "pricing", "flags"} {
			if fd := msg.Descriptor().Fields().ByName(name); msg.Has(fd) && proto.Size(msg.Get(fd).Message().Interface()) == 0 {
				msg.Clear(fd)
			}
		}
		if !proto.Equal(msg, again) {
			t.Fatalf("%x: EnrichedProto reads another message than the protobuf runtime:\n got %v\nwant %v", data, again, msg)
		}
	})
}

// runtimeUnmarshal is proto.Unmarshal into a dynamic message, which panics
// on some malformed map entries (a key of the wrong wire type) where
// generated code reports an error.
func runtimeUnmarshal(data []byte, msg proto.Message) (err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	return proto.Unmarshal(data, msg), false
}

func TestEnrichedProtoErrors(t *testing.T) {
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte{0x12, 0x05, 'a'}, "event_id: 5 bytes long, but only 1 remain"},
		{[]byte{0x10, 0x01}, "event_id: wire type 0, want 2"},
		{[]byte{0x4a, 0x01, 0xff}, "model: not valid UTF-8"},
		{[]byte{0x8a, 0x01, 0x01, '{'}, "raw_usage: not JSON text"},
		{[]byte{0x1a, 0x02, 0x10, 0x7f}, ""},
		{[]byte{0x1a, 0x03, 0x10, 0x80, 0x94}, "time: unexpected EOF"},
		{[]byte{0x1a, 0x03, 0x10, 0x80, 0x14}, ""},
		{[]byte{0x1a, 0x06, 0x10, 0x80, 0x94, 0xeb, 0xdc, 0x03}, "time: 0 s 1000000000 ns is out of range"},
		{[]byte{0xff}, "malformed field tag"},
		{[]byte{0xa2, 0x01, 0x02, 0x51, 0x00}, "gpu.interval_seconds: unexpected EOF"},
	} {
		var d Decoder
		err := d.EnrichedProto(c.data, new(Enriched))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%x: %v", c.data, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%x: error %v, want one with %q", c.data, err, c.want)
		}
	}
}

func TestIsProtobuf(t *testing.T) {
	for v, want := range map[string]bool{
		ContentTypeProtobuf: true, "application/x-protobuf": true, "Application/X-Protobuf;x=1": true,
		"application/json": false, "application/x-protobufx": false, "": false, "application/x-proto": false,
	} {
		if got := IsProtobuf([]byte(v)); got != want {
			t.Errorf("IsProtobuf(%q) = %v", v, got)
		}
	}
}

func BenchmarkProto(b *testing.B) {
	e, err := DecodeEnriched(benchEnriched())
	if err != nil {
		b.Fatal(err)
	}
	enc := e.AppendProto(nil)
	js := e.AppendJSON(nil)
	b.Logf("protobuf %d bytes, JSON %d", len(enc), len(js))
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = e.AppendProto(buf[:0])
		}
	})
	for _, skip := range []bool{false, true} {
		name := "decode"
		if skip {
			name = "decode/aggregator"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			d := Decoder{SkipCostLines: skip, LabelsAsJSON: skip}
			var out Enriched
			for b.Loop() {
				if err := d.EnrichedProto(enc, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// enrichedDescriptor is aivis.usage.v1.Enriched as enriched_v1.proto
// declares it, read by parseProto.
func enrichedDescriptor(t testing.TB) protoreflect.MessageDescriptor {
	protoOnce.Do(func() {
		protoFile, protoErr = parseProto("enriched_v1.proto")
	})
	if protoErr != nil {
		t.Fatal(protoErr)
	}
	return protoFile.Messages().ByName("Enriched")
}

var (
	protoOnce sync.Once
	protoFile protoreflect.FileDescriptor
	protoErr  error
)

// parseProto reads the subset of the proto3 language enriched_v1.proto is
// written in (messages of scalar, message, optional, repeated and map
// fields) into a file descriptor, so that the protobuf runtime can hold
// the hand-written codec to the published schema.
func parseProto(path string) (protoreflect.FileDescriptor, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fd := &descriptorpb.FileDescriptorProto{Name: proto.String(path), Syntax: proto.String("proto3")}
	scalars := map[string]descriptorpb.FieldDescriptorProto_Type{
		"string": descriptorpb.FieldDescriptorProto_TYPE_STRING, "int64": descriptorpb.FieldDescriptorProto_TYPE_INT64,
		"bool": descriptorpb.FieldDescriptorProto_TYPE_BOOL, "double": descriptorpb.FieldDescriptorProto_TYPE_DOUBLE,
	}
	typeRef := func(name string) (descriptorpb.FieldDescriptorProto_Type, *string) {
		if s, ok := scalars[name]; ok {
			return s, nil
		}
		if !strings.Contains(name, ".") {
			name = fd.GetPackage() + "." + name
		}
		return descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, proto.String("." + name)
	}
	var msg *descriptorpb.DescriptorProto
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "//")
		line = strings.TrimSpace(line)
		fail := func() error { return fmt.Errorf("%s:%d: cannot read %q", path, n, line) }
		switch {
		case line == "" || strings.HasPrefix(line, "syntax "):
		case strings.HasPrefix(line, "package "):
			fd.Package = proto.String(strings.TrimSuffix(strings.TrimPrefix(line, "package "), ";"))
		case strings.HasPrefix(line, "import "):
			fd.Dependency = append(fd.Dependency, strings.Trim(strings.TrimPrefix(line, "import "), `";`))
		case strings.HasPrefix(line, "message "):
			msg = &descriptorpb.DescriptorProto{Name: proto.String(strings.Fields(line)[1])}
			fd.MessageType = append(fd.MessageType, msg)
		case line == "}":
			msg = nil
		default:
			decl, num, ok := strings.Cut(strings.TrimSuffix(line, ";"), "=")
			number, err := strconv.Atoi(strings.TrimSpace(num))
			if !ok || err != nil || msg == nil {
				return nil, fail()
			}
			f := &descriptorpb.FieldDescriptorProto{Number: proto.Int32(int32(number)), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
			words := strings.Fields(decl)
			if strings.HasPrefix(decl, "map<") {
				kv, name, _ := strings.Cut(strings.TrimPrefix(decl, "map<"), ">")
				k, v, _ := strings.Cut(kv, ",")
				entry := &descriptorpb.DescriptorProto{Name: proto.String(mapEntryName(strings.TrimSpace(name))),
					Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}}
				for i, typ := range []string{strings.TrimSpace(k), strings.TrimSpace(v)} {
					ft, ref := typeRef(typ)
					entry.Field = append(entry.Field, &descriptorpb.FieldDescriptorProto{Name: proto.String([]string{"key", "value"}[i]), Number: proto.Int32(int32(i + 1)),
						Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: ft.Enum(), TypeName: ref})
				}
				msg.NestedType = append(msg.NestedType, entry)
				words = []string{"repeated", "." + fd.GetPackage() + "." + msg.GetName() + "." + entry.GetName(), strings.TrimSpace(name)}
			}
			switch words[0] {
			case "repeated":
				f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
				words = words[1:]
			case "optional":
				f.Proto3Optional = proto.Bool(true)
				f.OneofIndex = proto.Int32(int32(len(msg.OneofDecl)))
				msg.OneofDecl = append(msg.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String("_" + words[2])})
				words = words[1:]
			}
			if len(words) != 2 {
				return nil, fail()
			}
			f.Name = proto.String(words[1])
			typ, ref := typeRef(strings.TrimPrefix(words[0], "."))
			if strings.HasPrefix(words[0], ".") {
				ref = proto.String(words[0])
			}
			f.Type, f.TypeName = typ.Enum(), ref
			msg.Field = append(msg.Field, f)
		}
	}
	return protodesc.NewFile(fd, protoregistry.GlobalFiles)
}

// mapEntryName is the name protoc gives the entry message of a map field.
func mapEntryName(field string) string {
	var b strings.Builder
	for _, part := range strings.Split(field, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String() + "Entry"
}
