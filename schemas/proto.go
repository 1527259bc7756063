package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The record header that tells an enriched record's encoding. A record of
// aivis.usage.enriched.v1 without it is JSON.
const (
	HeaderContentType   = "content-type"
	ContentTypeProtobuf = "application/x-protobuf; messageType=aivis.usage.v1.Enriched"
)

// IsProtobuf reports whether a content-type header value names the
// protobuf encoding of the enriched event (parameters aside).
func IsProtobuf(contentType []byte) bool {
	const media = "application/x-protobuf"
	if len(contentType) < len(media) || !strings.EqualFold(string(contentType[:len(media)]), media) {
		return false
	}
	rest := contentType[len(media):]
	return len(rest) == 0 || rest[0] == ';' || rest[0] == ' '
}

// Field numbers of enriched_v1.proto.
const (
	pSchemaVersion    = 1
	pEventID          = 2
	pTime             = 3
	pKind             = 4
	pSource           = 5
	pAPIKeyID         = 6
	pLabels           = 7
	pProvider         = 8
	pModel            = 9
	pOperation        = 10
	pStatus           = 11
	pErrorType        = 12
	pLatencyMs        = 13
	pServiceTier      = 14
	pStreaming        = 15
	pUsage            = 16
	pRawUsage         = 17
	pProviderCostUSD  = 18
	pWarnings         = 19
	pGPU              = 20
	pEndUser          = 21
	pTags             = 22
	pRequestBytes     = 23
	pResponseBytes    = 24
	pProviderRegion   = 25
	pProviderEndpoint = 26
	pRequestCount     = 27
	pOwner            = 40
	pPricing          = 41
	pCostPicos        = 42
	pCostSource       = 43
	pFlags            = 44
	pEnrichedAt       = 45
	pCanonicalModel   = 46

	pUsageServerToolCalls = 13
	pLines                = 3
)

// AppendProto appends e as the protobuf message aivis.usage.v1.Enriched
// (schemas/enriched_v1.proto) and returns the extended buffer. Labels and
// server tool calls are written in key order, so that equal events give
// equal bytes. Decoder.EnrichedProto reads it back.
func (e *Enriched) AppendProto(b []byte) []byte {
	return e.AppendProtoLabels(b, nil)
}

// AppendProtoLabels is AppendProto with e's labels already encoded
// (Decoder.LabelsProto), or encoded here when labels is nil.
func (e *Enriched) AppendProtoLabels(b, labels []byte) []byte {
	b = pString(b, pSchemaVersion, e.SchemaVersion)
	b = pString(b, pEventID, e.EventID)
	b = pTimestamp(b, pTime, e.Time)
	b = pString(b, pKind, e.Kind)
	b = pString(b, pSource, e.Source)
	b = pString(b, pAPIKeyID, e.APIKeyID)
	if labels != nil {
		b = append(b, labels...)
	} else if len(e.Labels) > 0 {
		b = appendProtoLabels(b, e.Labels)
	} else if len(e.LabelsJSON) > 0 {
		b = appendProtoLabels(b, labelsOf(e.LabelsJSON))
	}
	b = pString(b, pProvider, e.Provider)
	b = pString(b, pModel, e.Model)
	b = pString(b, pOperation, e.Operation)
	b = pString(b, pStatus, e.Status)
	b = pString(b, pErrorType, e.ErrorType)
	b = pOptInt(b, pLatencyMs, e.LatencyMs)
	b = pString(b, pServiceTier, e.ServiceTier)
	b = pBool(b, pStreaming, e.Streaming)
	if u := e.Usage; u != nil {
		var at int
		b, at = pBegin(b, pUsage)
		for i, p := range u.counts() {
			if i == 12 {
				b = appendProtoCalls(b, u.ServerToolCalls)
			}
			b = pOptInt(b, protowire.Number(i+1+i/12), *p)
		}
		b = pEnd(b, at)
	}
	if len(e.RawUsage) > 0 {
		b = pTag(b, pRawUsage, protowire.BytesType)
		if !utf8.Valid(e.RawUsage) {
			// A protobuf string is UTF-8. Parse refuses such raw usage;
			// a lenient decode (DecodeEnriched) keeps it.
			b = pLenString(b, strings.ToValidUTF8(string(appendCompact(nil, e.RawUsage)), "\uFFFD"))
		} else if compactAlready(e.RawUsage) {
			b = pLenBytes(b, e.RawUsage)
		} else {
			var at int
			b, at = pBeginLen(b)
			b = appendCompact(b, e.RawUsage)
			b = pEnd(b, at)
		}
	}
	b = pString(b, pProviderCostUSD, e.ProviderCostUSD)
	for _, w := range e.Warnings {
		b = pTag(b, pWarnings, protowire.BytesType)
		b = pLenString(b, w)
	}
	if g := e.GPU; g != nil {
		var at int
		b, at = pBegin(b, pGPU)
		b = pString(b, 1, g.GPUModel)
		b = pString(b, 2, g.GPUUUID)
		b = pString(b, 3, g.MIGProfile)
		b = pString(b, 4, g.Host)
		b = pString(b, 5, g.Cluster)
		b = pString(b, 6, g.Namespace)
		b = pString(b, 7, g.Pod)
		b = pString(b, 8, g.Container)
		b = pInt(b, 9, g.PID)
		b = pDouble(b, 10, g.IntervalSeconds)
		b = pDouble(b, 11, g.AllocatedSeconds)
		b = pDouble(b, 12, g.BusySeconds)
		b = pInt(b, 13, g.MemoryBytes)
		if g.EnergyJoules != nil {
			b = pTag(b, 14, protowire.Fixed64Type)
			b = protowire.AppendFixed64(b, math.Float64bits(*g.EnergyJoules))
		}
		b = pString(b, 15, g.PricingCategory)
		b = pString(b, 16, g.OwnerKind)
		b = pString(b, 17, g.OwnerID)
		b = pInt(b, 18, g.MemoryMaxBytes)
		b = pString(b, 19, g.ParentGPUUUID)
		b = pString(b, 20, g.Attribution)
		b = pEnd(b, at)
	}
	b = pString(b, pEndUser, e.EndUser)
	for _, t := range e.Tags {
		b = pTag(b, pTags, protowire.BytesType)
		b = pLenString(b, t)
	}
	b = pOptInt(b, pRequestBytes, e.RequestBytes)
	b = pOptInt(b, pResponseBytes, e.ResponseBytes)
	b = pString(b, pProviderRegion, e.ProviderRegion)
	b = pString(b, pProviderEndpoint, e.ProviderEndpoint)
	b = pOptInt(b, pRequestCount, e.RequestCount)

	if o := &e.Owner; *o != (Owner{}) {
		var at int
		b, at = pBegin(b, pOwner)
		b = pString(b, 1, o.Team)
		b = pString(b, 2, o.Project)
		b = pString(b, 3, o.CostCenter)
		b = pString(b, 4, o.Rule)
		b = pEnd(b, at)
	}
	if p := &e.Pricing; p.CatalogVersion != "" || p.PriceID != "" || len(p.Lines) > 0 {
		var at int
		b, at = pBegin(b, pPricing)
		b = pString(b, 1, p.CatalogVersion)
		b = pString(b, 2, p.PriceID)
		for i := range p.Lines {
			l := &p.Lines[i]
			var lat int
			b, lat = pBegin(b, pLines)
			b = pString(b, 1, l.Meter)
			b = pInt(b, 2, l.Quantity)
			b = pString(b, 3, l.UnitPrice)
			b = pInt(b, 4, l.CostPicos)
			b = pEnd(b, lat)
		}
		b = pEnd(b, at)
	}
	b = pInt(b, pCostPicos, e.CostPicos)
	b = pString(b, pCostSource, e.CostSource)
	if f := e.Flags; f != (Flags{}) {
		var at int
		b, at = pBegin(b, pFlags)
		b = pBool(b, 1, f.Unpriced)
		b = pBool(b, 2, f.Unowned)
		b = pBool(b, 3, f.UnapprovedModel)
		b = pBool(b, 4, f.UsageMismatch)
		b = pBool(b, 5, f.RegionNotAllowed)
		b = pBool(b, 6, f.MissingLabels)
		b = pEnd(b, at)
	}
	b = pTimestamp(b, pEnrichedAt, e.EnrichedAt)
	b = pString(b, pCanonicalModel, e.CanonicalModel)
	return b
}

// appendProtoLabels appends labels as map entries in key order.
func appendProtoLabels(b []byte, labels map[string]string) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := labels[k]
		b = pTag(b, pLabels, protowire.BytesType)
		b = pVarint(b, uint64(2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v))))
		b = pStringAlways(b, 1, k)
		b = pStringAlways(b, 2, v)
	}
	return b
}

// labelsOf reads labels kept as JSON text by a Decoder with LabelsAsJSON:
// rare outside the aggregator, which encodes no events.
func labelsOf(text json.RawMessage) map[string]string {
	var m map[string]string
	if json.Unmarshal(text, &m) != nil {
		return nil
	}
	return m
}

func appendProtoCalls(b []byte, calls map[string]int64) []byte {
	if len(calls) == 0 {
		return b
	}
	var arr [16]string
	keys := arr[:0]
	for k := range calls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := calls[k]
		b = pTag(b, pUsageServerToolCalls, protowire.BytesType)
		b = pVarint(b, uint64(2+protowire.SizeBytes(len(k))+protowire.SizeVarint(uint64(v))))
		b = pStringAlways(b, 1, k)
		b = pTag(b, 2, protowire.VarintType)
		b = pVarint(b, uint64(v))
	}
	return b
}

// pTag appends a field's tag.
func pTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return pVarint(b, uint64(num)<<3|uint64(typ))
}

// pVarint appends v as a varint; protowire.AppendVarint's unrolled form
// is slower on the one- and two-byte values that nearly every field has.
func pVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pLenString(b []byte, s string) []byte {
	return append(pVarint(b, uint64(len(s))), s...)
}

func pLenBytes(b []byte, v []byte) []byte {
	return append(pVarint(b, uint64(len(v))), v...)
}

// pString appends a string field, leaving out an empty one as proto3 does.
func pString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	if len(s) < 0x80 {
		// One byte of length; one byte of tag up to field 15, two up to 2047.
		if num < 16 {
			return append(append(b, byte(num)<<3|byte(protowire.BytesType), byte(len(s))), s...)
		}
		if num < 2048 {
			return append(append(b, byte(num)<<3|byte(protowire.BytesType)|0x80, byte(num>>4), byte(len(s))), s...)
		}
	}
	return pStringAlways(b, num, s)
}

func pStringAlways(b []byte, num protowire.Number, s string) []byte {
	b = pTag(b, num, protowire.BytesType)
	return pLenString(b, s)
}

func pInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	if num < 16 {
		b = append(b, byte(num)<<3|byte(protowire.VarintType))
	} else {
		b = pTag(b, num, protowire.VarintType)
	}
	return pVarint(b, uint64(v))
}

// pOptInt appends an optional int64 field: set, even to 0, when p is not nil.
func pOptInt(b []byte, num protowire.Number, p *int64) []byte {
	if p == nil {
		return b
	}
	b = pTag(b, num, protowire.VarintType)
	return pVarint(b, uint64(*p))
}

func pBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return append(pTag(b, num, protowire.VarintType), 1)
}

func pDouble(b []byte, num protowire.Number, f float64) []byte {
	if f == 0 && !math.Signbit(f) {
		return b
	}
	b = pTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(f))
}

// pTimestamp appends t as a google.protobuf.Timestamp; the zero time is
// left out.
func pTimestamp(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	n := 0
	if sec != 0 {
		n += 1 + protowire.SizeVarint(uint64(sec))
	}
	if nsec != 0 {
		n += 1 + protowire.SizeVarint(uint64(nsec))
	}
	b = pTag(b, num, protowire.BytesType)
	b = pVarint(b, uint64(n))
	b = pInt(b, 1, sec)
	return pInt(b, 2, nsec)
}

// pBegin appends the tag of message field num and one byte for its length,
// which pEnd sets once the message is written: nearly every message here is
// under 128 bytes, whose length takes one byte.
func pBegin(b []byte, num protowire.Number) ([]byte, int) {
	return pBeginLen(pTag(b, num, protowire.BytesType))
}

func pBeginLen(b []byte) ([]byte, int) {
	return append(b, 0), len(b) + 1
}

// pEnd sets the length of the message that starts at at, moving it along
// when its length takes more than the one byte pBegin left.
func pEnd(b []byte, at int) []byte {
	n := len(b) - at
	if n < 0x80 {
		b[at-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	for range extra {
		b = append(b, 0)
	}
	copy(b[at+extra:], b[at:at+n])
	pVarint(b[:at-1], uint64(n))
	return b
}

// DecodeEnrichedProto is DecodeEnriched for the protobuf form: a record of
// the enriched topic whose content-type header IsProtobuf.
func DecodeEnrichedProto(data []byte) (*Enriched, error) {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	e := new(Enriched)
	if err := d.EnrichedProto(data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// EnrichedProto decodes one aivis.usage.v1.Enriched message (AppendProto)
// into *e, which it overwrites, reusing its memory as Enriched does.
// Unknown fields are skipped, as protobuf readers do; a field of the wrong
// wire type, a truncated message, a string that is not UTF-8, raw_usage
// that is not JSON, a number JSON cannot hold or a timestamp out of range
// is an error. SkipCostLines and LabelsAsJSON apply as for Enriched;
// ReuseLabels does not.
func (d *Decoder) EnrichedProto(data []byte, e *Enriched) error {
	d.spare = spare{ints: d.spare.ints[:0]}
	d.takeEvent(&e.Event)
	d.spare.lines = e.Pricing.Lines[:0]
	*e = Enriched{}
	r := protoReader{d: d, b: data, end: len(data), kv: d.protoKV[:0]}
	r.enriched(e)
	clear(r.kv) // no hold on data
	d.protoKV = r.kv[:0]
	if r.err != nil {
		return fmt.Errorf("decoding enriched event (protobuf): %w", r.err)
	}
	return nil
}

// protoReader reads a message, b[i:end]; a nested message is read by
// narrowing end to it (message). err is the first problem met, naming the
// field.
type protoReader struct {
	d      *Decoder
	err    error
	b      []byte
	i, end int
	kv     [][2][]byte // the labels of the message, in order
}

// next reads the next field's tag; ok is false at the end of the message
// or on an error.
func (r *protoReader) next(msg string) (num protowire.Number, typ protowire.Type, ok bool) {
	if r.i >= r.end || r.err != nil {
		return 0, 0, false
	}
	if c := r.b[r.i]; c < 0x80 && c >= 8 {
		r.i++
		return protowire.Number(c >> 3), protowire.Type(c & 7), true
	}
	num, typ, n := protowire.ConsumeTag(r.b[r.i:r.end])
	if n < 0 {
		r.err = fmt.Errorf("%s: malformed field tag at byte %d: %w", msg, r.i, protowire.ParseError(n))
		return 0, 0, false
	}
	if num > protowire.MaxValidNumber {
		r.err = fmt.Errorf("%s: field number %d at byte %d is beyond protobuf's %d", msg, num, r.i, protowire.MaxValidNumber)
		return 0, 0, false
	}
	r.i += n
	return num, typ, true
}

// skip moves past the value of a field the schema does not name.
func (r *protoReader) skip(msg string, num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, r.b[r.i:r.end])
	if n < 0 {
		r.err = fmt.Errorf("%s: field %d: %w", msg, num, protowire.ParseError(n))
		return
	}
	r.i += n
}

func (r *protoReader) wrongType(name string, typ, want protowire.Type) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: wire type %d, want %d (see schemas/enriched_v1.proto)", name, typ, want)
	}
}

// uvarint reads a varint.
func (r *protoReader) uvarint(name string) uint64 {
	if r.i < r.end {
		if c := r.b[r.i]; c < 0x80 {
			r.i++
			return uint64(c)
		}
	}
	v, n := protowire.ConsumeVarint(r.b[r.i:r.end])
	if n < 0 {
		if r.err == nil {
			r.err = fmt.Errorf("%s: %w", name, protowire.ParseError(n))
		}
		return 0
	}
	r.i += n
	return v
}

// span reads a length-delimited value and returns where it lies in b.
func (r *protoReader) span(name string, typ protowire.Type) (start, end int, ok bool) {
	if typ != protowire.BytesType {
		r.wrongType(name, typ, protowire.BytesType)
		return 0, 0, false
	}
	n := r.uvarint(name)
	if r.err != nil {
		return 0, 0, false
	}
	if n > uint64(r.end-r.i) {
		r.err = fmt.Errorf("%s: %d bytes long, but only %d remain: unexpected EOF", name, n, r.end-r.i)
		return 0, 0, false
	}
	start = r.i
	r.i += int(n)
	return start, r.i, true
}

// text reads a string value, which must be UTF-8.
func (r *protoReader) text(name string, typ protowire.Type) ([]byte, bool) {
	start, end, ok := r.span(name, typ)
	if !ok {
		return nil, false
	}
	v := r.b[start:end:end]
	if !utf8.Valid(v) {
		r.err = fmt.Errorf("%s: not valid UTF-8", name)
		return nil, false
	}
	return v, true
}

// str reads a string that repeats from one event to the next, such as a
// model or a team. slot names the field: a value equal to the last one
// read in its slot is that string again, neither checked nor interned
// again.
func (r *protoReader) str(slot int, name string, typ protowire.Type, dst *string) {
	start, end, ok := r.span(name, typ)
	if !ok {
		return
	}
	v := r.b[start:end:end]
	last := &r.d.protoLast[slot]
	if string(v) == *last {
		*dst = *last
		return
	}
	if !utf8.Valid(v) {
		r.err = fmt.Errorf("%s: not valid UTF-8", name)
		return
	}
	*dst = r.d.intern(v)
	*last = *dst
}

// strCopy is str for values seldom repeated, kept out of the intern table.
func (r *protoReader) strCopy(name string, typ protowire.Type, dst *string) {
	if v, ok := r.text(name, typ); ok {
		*dst = string(v)
	}
}

func (r *protoReader) varint(name string, typ protowire.Type) (uint64, bool) {
	if typ != protowire.VarintType {
		r.wrongType(name, typ, protowire.VarintType)
		return 0, false
	}
	v := r.uvarint(name)
	return v, r.err == nil
}

func (r *protoReader) int(name string, typ protowire.Type, dst *int64) {
	if v, ok := r.varint(name, typ); ok {
		*dst = int64(v)
	}
}

func (r *protoReader) optInt(name string, typ protowire.Type, dst **int64) {
	if v, ok := r.varint(name, typ); ok {
		*dst = r.d.newInt(int64(v))
	}
}

func (r *protoReader) bool(name string, typ protowire.Type, dst *bool) {
	if v, ok := r.varint(name, typ); ok {
		*dst = v != 0
	}
}

func (r *protoReader) double(name string, typ protowire.Type) float64 {
	if typ != protowire.Fixed64Type {
		r.wrongType(name, typ, protowire.Fixed64Type)
		return 0
	}
	if r.end-r.i < 8 {
		r.err = fmt.Errorf("%s: unexpected EOF", name)
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
	r.i += 8
	if math.IsNaN(f) || math.IsInf(f, 0) {
		r.err = fmt.Errorf("%s: %v is not a number JSON can hold", name, f)
	}
	return f
}

// protoSlots is the number of string fields EnrichedProto remembers the
// last value of (Decoder.protoLast).
const protoSlots = 35

// Timestamps are accepted in google.protobuf.Timestamp's range, years 1 to 9999.
const (
	minTimestamp = -62135596800
	maxTimestamp = 253402300799
)

func (r *protoReader) timestamp(name string, typ protowire.Type, dst *time.Time) {
	var sec, nsec int64
	if !dst.IsZero() {
		sec, nsec = dst.Unix(), int64(dst.Nanosecond())
	}
	ok := r.message(name, typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.int(name, typ, &sec)
		case 2:
			r.int(name, typ, &nsec)
		default:
			return false
		}
		return true
	})
	if !ok {
		return
	}
	if sec < minTimestamp || sec > maxTimestamp || nsec < 0 || nsec >= 1e9 {
		r.err = fmt.Errorf("%s: %d s %d ns is out of range for a timestamp", name, sec, nsec)
		return
	}
	*dst = time.Unix(sec, nsec).UTC()
}

// message reads the message that a field of wire type typ holds, calling
// field for each of its fields; a field that field does not know (it
// returns false) is skipped. It reports whether the message was read
// without an error.
func (r *protoReader) message(name string, typ protowire.Type, field func(protowire.Number, protowire.Type) bool) bool {
	start, end, ok := r.span(name, typ)
	if !ok {
		return false
	}
	outer := r.end
	r.i, r.end = start, end
	for {
		num, typ, ok := r.next(name)
		if !ok {
			break
		}
		if !field(num, typ) {
			r.skip(name, num, typ)
		}
	}
	r.i, r.end = end, outer
	return r.err == nil
}

func (r *protoReader) enriched(e *Enriched) {
	d := r.d
	labels := false
	for {
		num, typ, ok := r.next("enriched event")
		if !ok {
			break
		}
		switch num {
		case pSchemaVersion:
			r.str(0, "schema_version", typ, &e.SchemaVersion)
		case pEventID:
			r.strCopy("event_id", typ, &e.EventID)
		case pTime:
			r.timestamp("time", typ, &e.Time)
		case pKind:
			r.str(1, "kind", typ, &e.Kind)
		case pSource:
			r.str(2, "source", typ, &e.Source)
		case pAPIKeyID:
			r.str(3, "api_key_id", typ, &e.APIKeyID)
		case pLabels:
			labels = true
			r.label(typ)
		case pProvider:
			r.str(4, "provider", typ, &e.Provider)
		case pModel:
			r.str(5, "model", typ, &e.Model)
		case pOperation:
			r.str(6, "operation", typ, &e.Operation)
		case pStatus:
			r.str(7, "status", typ, &e.Status)
		case pErrorType:
			r.str(8, "error_type", typ, &e.ErrorType)
		case pLatencyMs:
			r.optInt("latency_ms", typ, &e.LatencyMs)
		case pServiceTier:
			r.str(9, "service_tier", typ, &e.ServiceTier)
		case pStreaming:
			r.bool("streaming", typ, &e.Streaming)
		case pUsage:
			r.usage(typ, &e.Usage)
		case pRawUsage:
			if v, ok := r.text("raw_usage", typ); ok {
				if !countsOnly(v) && !validJSON(v) {
					r.err = errors.New("raw_usage: not JSON text")
					break
				}
				buf := e.RawUsage
				if buf == nil {
					buf, d.spare.raw = d.spare.raw, nil
				}
				e.RawUsage = append(buf[:0], v...)
			}
		case pProviderCostUSD:
			r.strCopy("provider_cost_usd", typ, &e.ProviderCostUSD)
		case pWarnings:
			r.strs("warnings", typ, &e.Warnings)
		case pGPU:
			r.gpu(typ, &e.GPU)
		case pEndUser:
			r.strCopy("end_user", typ, &e.EndUser)
		case pTags:
			r.strs("tags", typ, &e.Tags)
		case pRequestBytes:
			r.optInt("request_bytes", typ, &e.RequestBytes)
		case pResponseBytes:
			r.optInt("response_bytes", typ, &e.ResponseBytes)
		case pProviderRegion:
			r.str(10, "provider_region", typ, &e.ProviderRegion)
		case pProviderEndpoint:
			r.str(11, "provider_endpoint", typ, &e.ProviderEndpoint)
		case pRequestCount:
			r.optInt("request_count", typ, &e.RequestCount)
		case pOwner:
			r.owner(typ, &e.Owner)
		case pPricing:
			r.pricing(typ, &e.Pricing)
		case pCostPicos:
			r.int("cost_picos", typ, &e.CostPicos)
		case pCostSource:
			r.str(12, "cost_source", typ, &e.CostSource)
		case pFlags:
			r.flags(typ, &e.Flags)
		case pEnrichedAt:
			r.timestamp("enriched_at", typ, &e.EnrichedAt)
		case pCanonicalModel:
			r.str(13, "canonical_model", typ, &e.CanonicalModel)
		default:
			r.skip("enriched event", num, typ)
		}
	}
	if labels && r.err == nil {
		r.setLabels(&e.Event)
	}
}

// label reads one labels map entry into r.kv.
func (r *protoReader) label(typ protowire.Type) {
	var kv [2][]byte
	if r.message("labels", typ, func(num protowire.Number, typ protowire.Type) bool {
		if num != 1 && num != 2 {
			return false
		}
		if v, ok := r.text("labels", typ); ok {
			kv[num-1] = v
		}
		return true
	}) {
		r.kv = append(r.kv, kv)
	}
}

// setLabels sets e's labels from r.kv: as JSON text in LabelsJSON when the
// Decoder has LabelsAsJSON and they are what AppendJSON would write as
// they are (keys increasing, printable ASCII with no escape); as a map
// otherwise, a later entry of a key winning as in protobuf.
func (r *protoReader) setLabels(e *Event) {
	d := r.d
	if d.LabelsAsJSON && plainLabels(r.kv) {
		buf, n := d.spare.labelsJS, 2
		d.spare.labelsJS = nil
		for _, kv := range r.kv {
			n += len(kv[0]) + len(kv[1]) + 6
		}
		buf = slices.Grow(buf[:0], n)
		buf = append(buf, '{')
		for i, kv := range r.kv {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(append(append(buf, '"'), kv[0]...), `":"`...)
			buf = append(append(buf, kv[1]...), '"')
		}
		e.LabelsJSON = append(buf, '}')
		return
	}
	m := d.spare.labels
	if m != nil && (d.lent == nil || !sameMap(m, d.lent)) {
		clear(m)
		d.spare.labels = nil
	} else {
		m = make(map[string]string, len(r.kv))
	}
	for _, kv := range r.kv {
		m[d.intern(kv[0])] = d.intern(kv[1])
	}
	e.Labels = m
}

func plainLabels(kv [][2][]byte) bool {
	for i, p := range kv {
		if i > 0 && string(kv[i-1][0]) >= string(p[0]) {
			return false
		}
		for _, s := range p {
			for _, c := range s {
				if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
					return false
				}
			}
		}
	}
	return true
}

func (r *protoReader) strs(name string, typ protowire.Type, dst *[]string) {
	v, ok := r.text(name, typ)
	if !ok {
		return
	}
	s := *dst
	if s == nil && r.d.spare.warnings != nil {
		s = r.d.spare.warnings[:0]
		clear(s[:cap(s)])
		r.d.spare.warnings = nil
	}
	*dst = append(s, r.d.intern(v))
}

func (r *protoReader) usage(typ protowire.Type, dst **Usage) {
	u := *dst
	if u == nil {
		u = r.d.newUsage()
		*dst = u
	}
	r.message("usage", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch {
		case num == pUsageServerToolCalls:
			r.call(typ, u)
		case num >= 1 && num <= 14:
			// Fields 1 to 12 are counts()[0:12], 14 is counts()[12].
			i := int(num) - 1 - int(num)/14
			r.optInt(usageProtoNames[i], typ, u.counts()[i])
		default:
			return false
		}
		return true
	})
}

// usageProtoNames are the counts' names in errors, in counts() order.
var usageProtoNames = func() (names [13]string) {
	for i := range names {
		names[i] = "usage." + usageNames[i]
	}
	return names
}()

func (r *protoReader) call(typ protowire.Type, u *Usage) {
	const name = "usage.server_tool_calls"
	var k []byte
	var v int64
	if !r.message(name, typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			k, _ = r.text(name, typ)
		case 2:
			r.int(name, typ, &v)
		default:
			return false
		}
		return true
	}) {
		return
	}
	if u.ServerToolCalls == nil {
		if u.ServerToolCalls, r.d.spare.calls = r.d.spare.calls, nil; u.ServerToolCalls != nil {
			clear(u.ServerToolCalls)
		} else {
			u.ServerToolCalls = make(map[string]int64, 2)
		}
	}
	u.ServerToolCalls[r.d.intern(k)] = v
}

func (r *protoReader) gpu(typ protowire.Type, dst **GPUUsage) {
	g := *dst
	if g == nil {
		g = r.d.newGPU()
		*dst = g
	}
	r.message("gpu", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.str(14, "gpu.gpu_model", typ, &g.GPUModel)
		case 2:
			r.str(15, "gpu.gpu_uuid", typ, &g.GPUUUID)
		case 3:
			r.str(16, "gpu.mig_profile", typ, &g.MIGProfile)
		case 4:
			r.str(17, "gpu.host", typ, &g.Host)
		case 5:
			r.str(18, "gpu.cluster", typ, &g.Cluster)
		case 6:
			r.str(19, "gpu.namespace", typ, &g.Namespace)
		case 7:
			r.str(20, "gpu.pod", typ, &g.Pod)
		case 8:
			r.str(21, "gpu.container", typ, &g.Container)
		case 9:
			r.int("gpu.pid", typ, &g.PID)
		case 10:
			g.IntervalSeconds = r.double("gpu.interval_seconds", typ)
		case 11:
			g.AllocatedSeconds = r.double("gpu.allocated_gpu_seconds", typ)
		case 12:
			g.BusySeconds = r.double("gpu.busy_gpu_seconds", typ)
		case 13:
			r.int("gpu.memory_bytes", typ, &g.MemoryBytes)
		case 14:
			f := r.double("gpu.energy_joules", typ)
			g.EnergyJoules = &f
		case 15:
			r.str(22, "gpu.pricing_category", typ, &g.PricingCategory)
		case 16:
			r.str(23, "gpu.owner_kind", typ, &g.OwnerKind)
		case 17:
			r.str(24, "gpu.owner_id", typ, &g.OwnerID)
		case 18:
			r.int("gpu.memory_max_bytes", typ, &g.MemoryMaxBytes)
		case 19:
			r.str(25, "gpu.parent_gpu_uuid", typ, &g.ParentGPUUUID)
		case 20:
			r.str(26, "gpu.attribution", typ, &g.Attribution)
		default:
			return false
		}
		return true
	})
}

func (r *protoReader) owner(typ protowire.Type, o *Owner) {
	r.message("owner", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.str(27, "owner.team", typ, &o.Team)
		case 2:
			r.str(28, "owner.project", typ, &o.Project)
		case 3:
			r.str(29, "owner.cost_center", typ, &o.CostCenter)
		case 4:
			r.str(30, "owner.rule", typ, &o.Rule)
		default:
			return false
		}
		return true
	})
}

func (r *protoReader) pricing(typ protowire.Type, p *Pricing) {
	r.message("pricing", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.str(31, "pricing.catalog_version", typ, &p.CatalogVersion)
		case 2:
			r.str(32, "pricing.price_id", typ, &p.PriceID)
		case pLines:
			if r.d.SkipCostLines {
				r.span("pricing.lines", typ)
			} else {
				r.line(typ, p)
			}
		default:
			return false
		}
		return true
	})
}

func (r *protoReader) line(typ protowire.Type, p *Pricing) {
	var l CostLine
	if !r.message("pricing.lines", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.str(33, "pricing.lines.meter", typ, &l.Meter)
		case 2:
			r.int("pricing.lines.quantity", typ, &l.Quantity)
		case 3:
			r.str(34, "pricing.lines.unit_price_per_1m", typ, &l.UnitPrice)
		case 4:
			r.int("pricing.lines.cost_picos", typ, &l.CostPicos)
		default:
			return false
		}
		return true
	}) {
		return
	}
	if p.Lines == nil {
		p.Lines, r.d.spare.lines = r.d.spare.lines[:0], nil
	}
	p.Lines = append(p.Lines, l)
}

func (r *protoReader) flags(typ protowire.Type, f *Flags) {
	r.message("flags", typ, func(num protowire.Number, typ protowire.Type) bool {
		switch num {
		case 1:
			r.bool("flags.unpriced", typ, &f.Unpriced)
		case 2:
			r.bool("flags.unowned", typ, &f.Unowned)
		case 3:
			r.bool("flags.unapproved_model", typ, &f.UnapprovedModel)
		case 4:
			r.bool("flags.usage_mismatch", typ, &f.UsageMismatch)
		case 5:
			r.bool("flags.region_not_allowed", typ, &f.RegionNotAllowed)
		case 6:
			r.bool("flags.missing_labels", typ, &f.MissingLabels)
		default:
			return false
		}
		return true
	})
}
