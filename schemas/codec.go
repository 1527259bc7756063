package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Decoder decodes usage events and enriched events without reflection, with
// exactly the result encoding/json gives for the same bytes (see Parse and
// DecodeEnriched for which rules apply). The zero value is ready to use; a
// Decoder keeps scratch buffers and a small table of recent short strings
// between calls, so that repeated values such as a model or a team name are
// not allocated again. A Decoder is not safe for concurrent use.
//
// Decoded values never refer to the input bytes: callers may reuse them.
type Decoder struct {
	// SkipCostLines makes Enriched leave Pricing.Lines nil: the lines are
	// read as JSON and otherwise skipped, as json.Unmarshal skips a field
	// its struct lacks. For readers that use an event's totals only, such
	// as the aggregator, to which the lines are a third of the record.
	SkipCostLines bool

	// LabelsAsJSON makes Enriched keep labels written as AppendJSON
	// writes them (keys sorted, printable ASCII that needs no escape) as
	// that text, in LabelsJSON, and leave Labels nil; other labels are
	// decoded into Labels as usual. For readers that store labels and
	// look none up, such as the aggregator: a map per event costs more
	// than the rest of its fields.
	LabelsAsJSON bool

	// EventIDInPlace makes Event and EventAt leave EventID referring to
	// the input bytes, instead of a copy, when its text needs no
	// decoding: it is valid only while they are unchanged. For a reader
	// done with each event before its input is reused, such as enrich,
	// which saves an allocation an event.
	EventIDInPlace bool

	// ReuseLabels makes Event keep the labels maps of recent decodes,
	// by their text, and hand one back as it is, neither cleared nor
	// filled again, when an event's labels are the same text and that
	// text is written as AppendJSON writes labels (and names no
	// credential). The caller passes the same Event to every decode and
	// changes a decoded Labels map only through HideSecrets. For a reader
	// of events from a bounded set of owners, such as enrich: filling
	// the map is about a tenth of decoding an event. With it, Event also
	// keeps the members from kind to error_type (gateway, key, labels,
	// provider, model, status) of recent events by their text, and takes
	// them from there when an event repeats that text byte for byte.
	ReuseLabels bool
	// labelSets holds the maps ReuseLabels hands back (allocated on
	// first use); lent is the one the last decode handed back, which the
	// decoder must not fill again while the caller holds it, and free a
	// map no one holds, for the next labels that are not kept.
	labelSets *[labelSetSlots]labelSet
	lent      map[string]string
	lentSet   *labelSet // the set lent came from
	free      map[string]string
	setIDs    uint64 // the last labelSet.id given
	// runs keeps, with ReuseLabels, the runs of members from kind to
	// error_type of recent decodes by a hash of their text, for the
	// events that repeat one (allocated on first use); runNext is the
	// way of each set that the next run replaces.
	runs    *[runSets][runWays]memberRun
	runNext *[runSets]uint8

	data   []byte
	i      int
	strict bool
	soft   bool  // seen something that CheckJSON reports
	err    error // the first syntax or type error
	depth  int   // open objects and arrays at d.i
	path   []pathStep
	// track keeps path up to date. Only an error's message needs it, so
	// an input that fails is decoded a second time with track set, and
	// the first pass, the one nearly every input gets, spends nothing
	// on it.
	track bool

	key             []byte  // the key nextKey read: input or kbuf
	buf, kbuf, fbuf []byte  // string, key and folded key scratch
	stack           []byte  // closers of the containers skip is in
	ints            []int64 // count slab: pointers into it are handed out
	spare           spare
	tab             *[internSize][2]string // allocated on first use
	tabNext         *[internSize]uint8     // the way of tab a miss replaces
	// creds remembers CredentialName for the label names met, by the
	// same slots as tab; allocated on first use.
	creds *[internSize]credName
	// protoKV is EnrichedProto's scratch for a message's labels.
	protoKV [][2][]byte
	// protoLast holds the last value EnrichedProto read of each string
	// field (protoReader.str).
	protoLast [protoSlots]string
	// credLabels: a label of the last decode is named like a credential,
	// so HideSecrets has labels to look at.
	credLabels bool

	// reducedRaw is the raw_usage of the last strict decode when it was
	// a usage object already reduced and clean (see countsOnly): its
	// first byte and length, for HideSecrets.
	reducedRaw *byte
	reducedLen int

	// loose: the input so far holds something AppendJSON writes
	// otherwise (space, an escape, a null, keys out of order, ...); a
	// strict decode that is not loose checks the strings it reads for
	// it, at a small cost.
	// headStart and headEnd bound, in the input of the last Event
	// decode, the members up to provider_cost_usd while they are written
	// as AppendJSON writes them; headEnd < 0 when they are not. See
	// CanonicalHead.
	loose              bool
	headStart, headEnd int

	// minuteText is the "2006-01-02T15:04" of the last time parsed (zero
	// before one), and minute its Unix time.
	minuteText [16]byte
	minute     int64
}

// spare holds the memory of the value being decoded into, taken apart
// before the decode so that the new value can reuse it.
type spare struct {
	ints     []*int64
	usage    *Usage
	gpu      *GPUUsage
	labels   map[string]string
	calls    map[string]int64
	warnings []string
	raw      json.RawMessage
	lines    []CostLine
	labelsJS json.RawMessage
}

// pathStep is one step of the path to the value being decoded: a field
// name, a map key, or an array index (idx ≥ 0).
type pathStep struct {
	name string
	key  []byte
	idx  int
}

// internSize is the number of sets of two strings a Decoder keeps (a
// power of two); maxIntern the longest string it keeps.
const (
	internSize = 512
	maxIntern  = 64
)

// decoders serves Parse, Decode and DecodeEnriched.
var decoders = sync.Pool{New: func() any { return new(Decoder) }}

// Event decodes one usage event into *e with the rules of Parse: unknown
// fields, trailing data, repeated keys, keys that name one field twice by
// case, invalid UTF-8 and lone surrogates are errors; the last three come
// as a *ValidationError with CheckJSON's problems. It does not validate.
//
// *e is overwritten entirely; the memory it holds (its Usage, GPU, maps,
// slices and counts) is reused, so a value decoded earlier into the same
// *e must not be used afterwards. Pass a new Event to keep the old one.
func (d *Decoder) Event(data []byte, e *Event) error {
	for retry := false; ; retry = true {
		d.begin(data, true)
		d.track = retry
		d.takeEvent(e)
		*e = Event{}
		d.top(func() { d.event(e, nil) })
		if d.err == nil || retry {
			break
		}
	}
	d.data, d.key = nil, nil // the caller may reuse data
	if d.err != nil {
		return fmt.Errorf("decoding usage event JSON: %w", d.err)
	}
	if d.soft {
		if probs := CheckJSON(data, new(Event)); len(probs) > 0 {
			return &ValidationError{Problems: probs}
		}
	}
	return nil
}

// EventAt is Event for the JSON object that starts at data[i], one of
// several values in data: it returns the offset just past the object and
// leaves what follows to the caller. It lets a caller that splits a body
// into events decode each as it finds it, instead of scanning every value
// twice. On an error the end is unknown (end < 0); syntax reports whether
// the error is malformed JSON, after which nothing later in data can be
// trusted either.
func (d *Decoder) EventAt(data []byte, i int, e *Event) (end int, syntax bool, err error) {
	for retry := false; ; retry = true {
		d.begin(data, true)
		d.track = retry
		d.i = i
		d.takeEvent(e)
		*e = Event{}
		if d.peek() != '{' {
			d.fail("the value is %s, not a JSON object", jsonKindOf(d.peek()))
		} else {
			d.event(e, nil)
		}
		if d.err == nil || retry {
			break
		}
	}
	end = d.i
	d.data, d.key = nil, nil
	if d.err != nil {
		return -1, errors.Is(d.err, errSyntax), fmt.Errorf("decoding usage event JSON: %w", d.err)
	}
	if d.soft {
		if probs := CheckJSON(data[i:end], new(Event)); len(probs) > 0 {
			return -1, false, &ValidationError{Problems: probs}
		}
	}
	return end, false, nil
}

// Enriched decodes one enriched event into *e as json.Unmarshal would:
// unknown fields are skipped and nothing beyond JSON is checked. *e is
// overwritten and its memory reused, as for Event.
func (d *Decoder) Enriched(data []byte, e *Enriched) error {
	for retry := false; ; retry = true {
		d.begin(data, false)
		d.track = retry
		d.takeEvent(&e.Event)
		d.spare.lines = e.Pricing.Lines[:0]
		*e = Enriched{}
		d.top(func() { d.event(&e.Event, e) })
		if d.err == nil || retry {
			break
		}
	}
	d.data, d.key = nil, nil
	if d.err != nil {
		return fmt.Errorf("decoding enriched event: %w", d.err)
	}
	return nil
}

func (d *Decoder) begin(data []byte, strict bool) {
	d.data, d.i, d.strict, d.soft, d.err, d.depth = data, 0, strict, false, nil, 0
	d.path = d.path[:0]
	d.spare = spare{ints: d.spare.ints[:0]}
	d.reducedRaw, d.reducedLen = nil, 0
	d.credLabels = false
	d.loose, d.headStart, d.headEnd = false, 0, -1
}

// CanonicalHead returns where, in the input of the last Event or EventAt
// decode, the event's members from schema_version to provider_cost_usd
// lie, when they are byte for byte what Event.AppendJSON writes for them
// and Decoder.HideSecrets has changed none of them since: ok is false
// otherwise. Enriched.AppendJSONHead takes that text in place of encoding
// those members again. Ingest, the Go client and json.Marshal write
// events that pass.
func (d *Decoder) CanonicalHead() (start, end int, ok bool) {
	if d.err != nil || d.headEnd < 0 {
		return 0, 0, false
	}
	return d.headStart, d.headEnd, true
}

// headRequired are the fields AppendJSON writes even when empty: a head
// without one of them is not what it writes.
const headRequired = 1<<fSchemaVersion | 1<<fEventID | 1<<fTime | 1<<fKind | 1<<fSource

// headField notes the end of head field id of e, just decoded: the head
// grows to it while everything so far is canonical, and is lost for good
// otherwise.
func (d *Decoder) headField(id int, e *Event) {
	empty := false
	switch id {
	case fAPIKeyID:
		empty = e.APIKeyID == ""
	case fLabels:
		empty = len(e.Labels) == 0
	case fProvider:
		empty = e.Provider == ""
	case fModel:
		empty = e.Model == ""
	case fOperation:
		empty = e.Operation == ""
	case fStatus:
		empty = e.Status == ""
	case fErrorType:
		empty = e.ErrorType == ""
	case fLatencyMs:
		empty = e.LatencyMs == nil
	case fServiceTier:
		empty = e.ServiceTier == ""
	case fStreaming:
		empty = !e.Streaming
	case fUsage:
		empty = e.Usage == nil
	case fProviderCostUSD:
		empty = e.ProviderCostUSD == ""
	}
	// AppendJSON leaves an empty optional member out.
	if empty || d.loose {
		d.loose, d.headEnd = true, -1
	} else if d.headEnd >= 0 {
		d.headEnd = d.i
	}
}

// takeEvent keeps what *e holds for reuse.
func (d *Decoder) takeEvent(e *Event) {
	sp := &d.spare
	for _, p := range [...]*int64{e.LatencyMs, e.RequestBytes, e.ResponseBytes, e.RequestCount} {
		if p != nil {
			sp.ints = append(sp.ints, p)
		}
	}
	if u := e.Usage; u != nil {
		for _, p := range u.counts() {
			if *p != nil {
				sp.ints = append(sp.ints, *p)
			}
		}
		sp.usage, sp.calls = u, u.ServerToolCalls
	}
	sp.gpu, sp.labels, sp.raw, sp.labelsJS = e.GPU, e.Labels, e.RawUsage[:0], e.LabelsJSON[:0]
	if e.Warnings != nil {
		sp.warnings = e.Warnings[:0]
	}
}

// newUsage returns the Usage of the value decoded into before, cleared, or
// a new one.
func (d *Decoder) newUsage() *Usage {
	if u := d.spare.usage; u != nil {
		d.spare.usage = nil
		*u = Usage{}
		return u
	}
	return new(Usage)
}

// newGPU is newUsage for GPUUsage.
func (d *Decoder) newGPU() *GPUUsage {
	if g := d.spare.gpu; g != nil {
		d.spare.gpu = nil
		*g = GPUUsage{}
		return g
	}
	return new(GPUUsage)
}

func (u *Usage) counts() [13]**int64 {
	return [13]**int64{&u.InputTokens, &u.CacheReadInputTokens, &u.CacheWriteInputTokens, &u.OutputTokens,
		&u.ReasoningOutputTokens, &u.CacheWrite5mInputTokens, &u.CacheWrite1hInputTokens, &u.ToolInputTokens,
		&u.InputAudioTokens, &u.OutputAudioTokens, &u.AcceptedPredictionTokens, &u.RejectedPredictionTokens,
		&u.ProviderTotalTokens}
}

// top decodes the one value of the input with obj, which is called at an
// object's '{'; null leaves the value as it is, as encoding/json does.
func (d *Decoder) top(obj func()) {
	d.ws()
	switch d.peek() {
	case '{':
		obj()
	case 'n':
		d.literal("null")
	default:
		if d.valueStart() {
			d.fail("the value is %s, not a JSON object", jsonKindOf(d.peek()))
		}
	}
	if d.err != nil {
		return
	}
	d.ws()
	if d.i < len(d.data) {
		d.failSyntax("trailing data after the top-level value")
	}
}

func jsonKindOf(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// Event field ids, in struct order; Enriched's own fields follow.
const (
	fSchemaVersion = iota
	fEventID
	fTime
	fKind
	fSource
	fAPIKeyID
	fLabels
	fProvider
	fModel
	fOperation
	fStatus
	fErrorType
	fLatencyMs
	fServiceTier
	fStreaming
	fUsage
	fRawUsage
	fProviderCostUSD
	fWarnings
	fGPU
	fEndUser
	fTags
	fRequestBytes
	fResponseBytes
	fProviderRegion
	fProviderEndpoint
	fRequestCount
	fOwner
	fPricing
	fCostPicos
	fCostSource
	fFlags
	fEnrichedAt
	fCanonicalModel
)

// Field names by struct, in struct order (ids as above for events).
var (
	eventNames = []string{"schema_version", "event_id", "time", "kind", "source", "api_key_id", "labels",
		"provider", "model", "operation", "status", "error_type", "latency_ms", "service_tier", "streaming",
		"usage", "raw_usage", "provider_cost_usd", "warnings", "gpu",
		"end_user", "tags", "request_bytes", "response_bytes", "provider_region", "provider_endpoint", "request_count",
		"owner", "pricing", "cost_picos", "cost_source", "flags", "enriched_at", "canonical_model"}
	usageNames = []string{"input_tokens", "cache_read_input_tokens", "cache_write_input_tokens", "output_tokens",
		"reasoning_output_tokens", "cache_write_5m_input_tokens", "cache_write_1h_input_tokens", "tool_input_tokens",
		"input_audio_tokens", "output_audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens",
		"provider_total_tokens", "server_tool_calls"}
	gpuNames = []string{"gpu_model", "gpu_uuid", "mig_profile", "host", "cluster", "namespace", "pod", "container",
		"pid", "interval_seconds", "allocated_gpu_seconds", "busy_gpu_seconds", "memory_bytes", "energy_joules", "pricing_category",
		"owner_kind", "owner_id", "memory_max_bytes", "parent_gpu_uuid", "attribution"}
	ownerNames   = []string{"team", "project", "cost_center", "rule"}
	pricingNames = []string{"catalog_version", "price_id", "lines"}
	lineNames    = []string{"meter", "quantity", "unit_price_per_1m", "cost_picos"}
	flagNames    = []string{"unpriced", "unowned", "unapproved_model", "usage_mismatch", "region_not_allowed", "missing_labels"}
)

// fieldTable finds a struct's field by key as encoding/json does: the exact
// name first, then the first field whose name folds alike.
type fieldTable struct {
	names  []string
	quoted []string // `"name":` by id, what a canonical writer puts
	head   []uint64 // its first eight bytes (fewer: zero-padded), little-endian
	mask   []uint64 // the bytes of head that count
	head2  []uint64 // its next eight, as head
	mask2  []uint64
	slots  [64][]uint8 // exact names by fieldSlot
	folded map[string]int
}

func fieldSlot(key []byte) int {
	return (len(key)*7 + int(key[0])*3 + int(key[len(key)-1])) & 63
}

func newFieldTable(names []string) *fieldTable {
	t := &fieldTable{names: names, folded: map[string]int{}}
	for i, n := range names {
		q := `"` + n + `":`
		t.quoted = append(t.quoted, q)
		var head, mask [16]byte
		copy(head[:], q)
		for j := range min(len(q), 16) {
			mask[j] = 0xff
		}
		t.head = append(t.head, binary.LittleEndian.Uint64(head[:]))
		t.mask = append(t.mask, binary.LittleEndian.Uint64(mask[:]))
		t.head2 = append(t.head2, binary.LittleEndian.Uint64(head[8:]))
		t.mask2 = append(t.mask2, binary.LittleEndian.Uint64(mask[8:]))
		slot := fieldSlot([]byte(n))
		t.slots[slot] = append(t.slots[slot], uint8(i))
		if _, ok := t.folded[string(foldName([]byte(n)))]; !ok {
			t.folded[string(foldName([]byte(n)))] = i
		}
	}
	return t
}

func (t *fieldTable) exact(key []byte) (int, bool) {
	if len(key) == 0 {
		return 0, false
	}
	for _, id := range t.slots[fieldSlot(key)] {
		if t.names[id] == string(key) {
			return int(id), true
		}
	}
	return 0, false
}

var (
	eventTable    = newFieldTable(eventNames[:fOwner])
	enrichedTable = newFieldTable(eventNames)
	usageTable    = newFieldTable(usageNames)
	gpuTable      = newFieldTable(gpuNames)
	ownerTable    = newFieldTable(ownerNames)
	pricingTable  = newFieldTable(pricingNames)
	lineTable     = newFieldTable(lineNames)
	flagTable     = newFieldTable(flagNames)
)

// field returns the id of the field key names in t, or -1. In strict mode
// an unknown key is an error; a field named twice is noted for CheckJSON.
func (d *Decoder) field(t *fieldTable, key []byte, seen *uint64) int {
	id, ok := t.exact(key)
	if !ok {
		d.fbuf = appendFolded(d.fbuf[:0], key)
		id, ok = t.folded[string(d.fbuf)]
	}
	if !ok {
		if d.strict {
			d.fail("unknown field %q; check its spelling against the usage event v1 schema", d.pathWith(key))
		}
		return -1
	}
	if *seen&(1<<id) != 0 {
		d.soft = true
	}
	*seen |= 1 << id
	return id
}

// nextField moves to the n-th member of the open object whose fields t
// names and returns the member's field id, -1 for a key t does not know
// (the caller skips the value), and more false at the object's end.
//
// Canonical writers (AppendJSON, ingest) put an object's fields in the
// order of t, leaving out absent ones, so the key after field last is
// first looked for, as written, among the fields after last: a match
// skips scanning the key and looking it up. Any other key takes the
// general path, with the same result.
func (d *Decoder) nextField(n int, t *fieldTable, last int, seen *uint64) (id int, more bool) {
	if !d.keyStart(n) {
		return -1, false
	}
	if rest := d.data[d.i:]; len(rest) >= 8 {
		w := binary.LittleEndian.Uint64(rest)
		for id := last + 1; id < len(t.quoted); id++ {
			// Eight bytes at once first: most candidates differ in them.
			if w&t.mask[id] != t.head[id] {
				continue
			}
			q := t.quoted[id]
			if len(q) <= 8 || len(rest) >= 16 && len(q) <= 16 && binary.LittleEndian.Uint64(rest[8:])&t.mask2[id] == t.head2[id] ||
				len(rest) >= len(q) && string(rest[8:len(q)]) == q[8:] {
				d.i += len(q)
				d.key = rest[1 : len(q)-2]
				if *seen&(1<<id) != 0 {
					d.soft = true
				}
				*seen |= 1 << id
				return id, true
			}
		}
	}
	// Not in the order and form of a canonical writer.
	d.loose = true
	if !d.keyRest() {
		return -1, false
	}
	return d.field(t, d.key, seen), true
}

// event decodes the object at d.i into e; en is e's Enriched, or nil for a
// plain event.
func (d *Decoder) event(e *Event, en *Enriched) {
	t := eventTable
	if en != nil {
		t = enrichedTable
	}
	var seen uint64
	head := d.strict && en == nil
	if head {
		d.headStart, d.headEnd = d.i+1, d.i+1
	}
	d.open()
	// run is the kept run (see Decoder.runs) of the members from kind to
	// error_type that follow time, when one has the same text but could
	// not be taken; runEnd is the end of those members, < 0 once they
	// are decoded or taken, or when they are not looked for.
	var run *memberRun
	runStart, runEnd, runHash := 0, -1, uint64(0)
	for n, last := 0, -1; ; n++ {
		if last == fTime && head && d.ReuseLabels && !d.track && !d.loose && !d.soft && d.err == nil {
			runStart = d.i
			if runEnd, runHash = d.runEnd(); runEnd > runStart {
				if run = d.findRun(runStart, runEnd, runHash); run != nil && d.takeRun(run, e) {
					seen |= run.seen
					last, d.i, d.headEnd = run.last, runEnd, runEnd
					runEnd = -1
					continue
				}
			} else {
				runEnd = -1
			}
		}
		if runEnd >= 0 && last > fTime && d.i >= runEnd {
			// The members decoded since runStart are the run: kept for
			// the next events that repeat it, when they are written as
			// a canonical writer writes them and name no credential.
			if d.i == runEnd && last <= fErrorType && !d.loose && !d.soft && d.err == nil && !d.credLabels &&
				(e.Labels == nil || d.lentLabels(e.Labels) != nil) {
				d.keepRun(run, runStart, runEnd, runHash, e, seen, last)
			}
			runEnd = -1
		}
		id, more := d.nextField(n, t, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(t.names[id])
		switch id {
		case fSchemaVersion:
			d.str(&e.SchemaVersion, true)
		case fEventID:
			if d.EventIDInPlace && en == nil {
				d.strInPlace(&e.EventID)
			} else {
				d.str(&e.EventID, false)
			}
		case fTime:
			d.time(&e.Time)
		case fKind:
			d.str(&e.Kind, true)
		case fSource:
			d.str(&e.Source, true)
		case fAPIKeyID:
			d.str(&e.APIKeyID, true)
		case fLabels:
			if en != nil && d.LabelsAsJSON && e.Labels == nil && e.LabelsJSON == nil && d.labelsText(&e.LabelsJSON) {
				break
			}
			if e.LabelsJSON != nil {
				// Named again: json.Unmarshal merges the objects, which
				// takes a map.
				if err := json.Unmarshal(e.LabelsJSON, &e.Labels); err != nil {
					d.fail("%s: %v", d.pathString(), err) // unreachable: the text was checked
				}
				e.LabelsJSON = nil
			}
			d.labels(&e.Labels)
		case fProvider:
			d.str(&e.Provider, true)
		case fModel:
			d.str(&e.Model, true)
		case fOperation:
			d.str(&e.Operation, true)
		case fStatus:
			d.str(&e.Status, true)
		case fErrorType:
			d.str(&e.ErrorType, true)
		case fLatencyMs:
			d.intPtr(&e.LatencyMs)
		case fServiceTier:
			d.str(&e.ServiceTier, true)
		case fStreaming:
			d.bool(&e.Streaming)
		case fUsage:
			d.usage(&e.Usage)
		case fRawUsage:
			d.raw(&e.RawUsage)
		case fProviderCostUSD:
			d.str(&e.ProviderCostUSD, false)
		case fWarnings:
			d.strs(&e.Warnings)
		case fGPU:
			d.gpu(&e.GPU)
		case fEndUser:
			d.str(&e.EndUser, false)
		case fTags:
			d.strs(&e.Tags)
		case fRequestBytes:
			d.intPtr(&e.RequestBytes)
		case fResponseBytes:
			d.intPtr(&e.ResponseBytes)
		case fProviderRegion:
			d.str(&e.ProviderRegion, true)
		case fProviderEndpoint:
			d.str(&e.ProviderEndpoint, true)
		case fRequestCount:
			d.intPtr(&e.RequestCount)
		case fOwner:
			d.owner(&en.Owner)
		case fPricing:
			d.pricing(&en.Pricing)
		case fCostPicos:
			d.int(&en.CostPicos)
		case fCostSource:
			d.str(&en.CostSource, true)
		case fFlags:
			d.flags(&en.Flags)
		case fEnrichedAt:
			d.time(&en.EnrichedAt)
		case fCanonicalModel:
			d.str(&en.CanonicalModel, true)
		}
		if head && id < fWarnings {
			d.headField(id, e)
		}
		d.pop()
	}
	d.close()
	if head && seen&headRequired != headRequired {
		d.headEnd = -1
	}
}

// memberRun is a run of an event's members from kind to error_type,
// written as a canonical writer writes them, and what it decodes to.
// Events of one gateway, key, owner and model repeat it byte for byte.
type memberRun struct {
	text                                                                  []byte
	kind, source, apiKeyID, provider, model, operation, status, errorType string
	set                                                                   *labelSet // the labels' set; nil for none
	setID                                                                 uint64    // set.id when the run was kept
	seen                                                                  uint64    // the run's fields
	last                                                                  int       // the run's last field
}

const (
	runSetBits = 9 // 2,048 runs: the gateways, keys and models of a stream
	runSets    = 1 << runSetBits
	runWays    = 4
	// runFields are the fields a run may hold.
	runFields = 1<<fKind | 1<<fSource | 1<<fAPIKeyID | 1<<fLabels | 1<<fProvider | 1<<fModel | 1<<fOperation | 1<<fStatus | 1<<fErrorType
)

// runEnd returns where the members from kind to error_type that start at
// d.i end, and a hash of their text: end is d.i when none starts there.
// It only finds them; a decode of those members, or the run kept of the
// same text, comes after.
//
// In an llm.request as a canonical writer writes it, latency_ms follows
// the run: its key, found with one search, ends the run. Other events are
// scanned member by member. Either way the text is compared in full
// before a kept run stands for it, so a key inside a string that
// misplaces the end only makes the run not found.
func (d *Decoder) runEnd() (end int, h uint64) {
	data, i := d.data, d.i
	if end = latencyAt(data, i, min(len(data), i+maxRunScan)); end <= i {
		if end = d.runScan(); end == i {
			return end, 0
		}
	}
	return end, maphash.Bytes(runSeed, data[i:end])
}

// latencyKey is the member after a run of a canonical llm.request.
const latencyKey = `,"latency_ms":`

// latencyAt returns where latencyKey first is in data[start:limit], or
// -1. It looks for its 'y', which JSON of events holds much more rarely
// than the ',' and '"' it starts with.
func latencyAt(data []byte, start, limit int) int {
	const y = 8 // latencyKey[y] == 'y'
	for i := start + y; i < limit; {
		k := bytes.IndexByte(data[i:limit], 'y')
		if k < 0 {
			return -1
		}
		if p := i + k - y; p+len(latencyKey) <= len(data) && string(data[p:p+len(latencyKey)]) == latencyKey {
			return p
		}
		i += k + 1
	}
	return -1
}

// maxRunScan bounds the text runEnd searches for latencyKey.
const maxRunScan = 2048

// runSeed seeds the hash of a run's text.
var runSeed = maphash.MakeSeed()

// runScan returns the end of the members from kind to error_type at d.i,
// found by their keys and the ends of their values, or d.i for none.
func (d *Decoder) runScan() int {
	data, i, t := d.data, d.i, eventTable
	for id := fKind; id <= fErrorType && i+9 < len(data) && data[i] == ','; id++ {
		for id <= fErrorType && !t.at(data, i+1, id) {
			id++
		}
		if id > fErrorType {
			break
		}
		j := i + 1 + len(t.quoted[id])
		// A value's end is its first closing quote or brace.
		k := -1
		if j < len(data) && data[j] == '"' {
			k = byteAfter(data, j+1, '"')
		} else if j < len(data) && data[j] == '{' && id == fLabels {
			k = byteAfter(data, j, '}')
		}
		if k < 0 {
			break
		}
		i = k
	}
	return i
}

// byteAfter returns the offset past the first c from data[i], or -1. It
// tests eight bytes at a time, as plainRun does.
func byteAfter(data []byte, i int, c byte) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(data); i += 8 {
		x := binary.LittleEndian.Uint64(data[i:]) ^ (ones * uint64(c))
		if m := (x - ones) &^ x & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8 + 1
		}
	}
	for ; i < len(data); i++ {
		if data[i] == c {
			return i + 1
		}
	}
	return -1
}

// at reports whether data holds field id's quoted key, as a canonical
// writer puts it, at i.
func (t *fieldTable) at(data []byte, i, id int) bool {
	q := t.quoted[id]
	if i+16 <= len(data) && len(q) <= 16 {
		return binary.LittleEndian.Uint64(data[i:])&t.mask[id] == t.head[id] && binary.LittleEndian.Uint64(data[i+8:])&t.mask2[id] == t.head2[id]
	}
	return i+len(q) <= len(data) && string(data[i:i+len(q)]) == q
}

// findRun returns the kept run of the text data[start:end], or nil.
func (d *Decoder) findRun(start, end int, h uint64) *memberRun {
	if d.runs == nil {
		return nil
	}
	text := d.data[start:end]
	ways := &d.runs[h>>(64-runSetBits)]
	for w := range ways {
		if r := &ways[w]; string(r.text) == string(text) {
			return r
		}
	}
	return nil
}

// takeRun decodes run's members into e, as decoding its text would; it
// reports false, changing nothing, when the labels map it names has been
// filled again since.
func (d *Decoder) takeRun(run *memberRun, e *Event) bool {
	if set := run.set; set != nil {
		if set.id != run.setID || set.m == nil || len(set.m) != set.n {
			return false
		}
		d.lend(set, &e.Labels)
	}
	e.Kind, e.Source, e.APIKeyID, e.Provider = run.kind, run.source, run.apiKeyID, run.provider
	e.Model, e.Operation, e.Status, e.ErrorType = run.model, run.operation, run.status, run.errorType
	return true
}

// keepRun keeps the members of e just decoded from data[start:end], in
// place of stale (a run of the same text that takeRun refused) or of the
// oldest run of their set.
func (d *Decoder) keepRun(stale *memberRun, start, end int, h uint64, e *Event, seen uint64, last int) {
	if d.runs == nil {
		d.runs, d.runNext = new([runSets][runWays]memberRun), new([runSets]uint8)
	}
	r := stale
	if r == nil {
		set := h >> (64 - runSetBits)
		w := d.runNext[set]
		d.runNext[set] = (w + 1) % runWays
		r = &d.runs[set][w]
	}
	*r = memberRun{text: append(r.text[:0], d.data[start:end]...),
		kind: e.Kind, source: e.Source, apiKeyID: e.APIKeyID, provider: e.Provider,
		model: e.Model, operation: e.Operation, status: e.Status, errorType: e.ErrorType,
		seen: seen & runFields, last: last}
	if e.Labels != nil {
		r.set = d.lentSet
		r.setID = r.set.id
	}
}

// object reports whether an object starts at d.i; null is consumed and
// any other value is a type error.
func (d *Decoder) object(what string) bool {
	d.ws()
	switch d.peek() {
	case '{':
		return true
	case 'n':
		d.literal("null")
	default:
		d.typeError(what)
	}
	return false
}

func (d *Decoder) usage(dst **Usage) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.object("an object") {
		return
	}
	u := *dst
	if u == nil {
		u = d.newUsage()
		*dst = u
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, usageTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(usageNames[id])
		if id == 13 {
			// AppendJSON writes it before provider_total_tokens.
			d.loose = true
			d.calls(&u.ServerToolCalls)
		} else {
			d.intPtr(u.counts()[id])
		}
		d.pop()
	}
	d.close()
}

func (d *Decoder) gpu(dst **GPUUsage) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.object("an object") {
		return
	}
	g := *dst
	if g == nil {
		g = d.newGPU()
		*dst = g
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, gpuTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(gpuNames[id])
		switch id {
		case 0:
			d.str(&g.GPUModel, true)
		case 1:
			d.str(&g.GPUUUID, false)
		case 2:
			d.str(&g.MIGProfile, true)
		case 3:
			d.str(&g.Host, true)
		case 4:
			d.str(&g.Cluster, true)
		case 5:
			d.str(&g.Namespace, true)
		case 6:
			d.str(&g.Pod, false)
		case 7:
			d.str(&g.Container, true)
		case 8:
			d.int(&g.PID)
		case 9:
			d.float(&g.IntervalSeconds)
		case 10:
			d.float(&g.AllocatedSeconds)
		case 11:
			d.float(&g.BusySeconds)
		case 12:
			d.int(&g.MemoryBytes)
		case 13:
			d.floatPtr(&g.EnergyJoules)
		case 14:
			d.str(&g.PricingCategory, true)
		case 15:
			d.str(&g.OwnerKind, true)
		case 16:
			d.str(&g.OwnerID, false)
		case 17:
			d.int(&g.MemoryMaxBytes)
		case 18:
			d.str(&g.ParentGPUUUID, false)
		case 19:
			d.str(&g.Attribution, true)
		}
		d.pop()
	}
	d.close()
}

func (d *Decoder) owner(o *Owner) {
	if !d.object("an object") {
		return
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, ownerTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(ownerNames[id])
		switch id {
		case 0:
			d.str(&o.Team, true)
		case 1:
			d.str(&o.Project, true)
		case 2:
			d.str(&o.CostCenter, true)
		case 3:
			d.str(&o.Rule, true)
		}
		d.pop()
	}
	d.close()
}

func (d *Decoder) pricing(p *Pricing) {
	if !d.object("an object") {
		return
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, pricingTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(pricingNames[id])
		switch id {
		case 0:
			d.str(&p.CatalogVersion, true)
		case 1:
			d.str(&p.PriceID, true)
		case 2:
			if d.SkipCostLines {
				d.skip()
			} else {
				d.lines(&p.Lines)
			}
		}
		d.pop()
	}
	d.close()
}

// lines decodes an array into *dst as encoding/json does: elements
// already in the slice, or in its capacity, are decoded into, not replaced.
func (d *Decoder) lines(dst *[]CostLine) {
	if !d.array(func() bool { *dst = nil; return false }) {
		return
	}
	s := *dst
	if s == nil && d.spare.lines != nil {
		s = d.spare.lines[:0]
		clear(s[:cap(s)])
		d.spare.lines = nil
	}
	i := 0
	for ; d.nextElem(i); i++ {
		if i >= len(s) {
			if i < cap(s) {
				s = s[:i+1]
			} else {
				s = append(s, CostLine{})
			}
		}
		d.pushIndex(i)
		d.line(&s[i])
		d.pop()
	}
	d.close()
	if i == 0 {
		s = []CostLine{}
	}
	*dst = s[:i]
}

func (d *Decoder) line(l *CostLine) {
	if !d.object("an object") {
		return
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, lineTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(lineNames[id])
		switch id {
		case 0:
			d.str(&l.Meter, true)
		case 1:
			d.int(&l.Quantity)
		case 2:
			d.str(&l.UnitPrice, true)
		case 3:
			d.int(&l.CostPicos)
		}
		d.pop()
	}
	d.close()
}

func (d *Decoder) flags(f *Flags) {
	if !d.object("an object") {
		return
	}
	var seen uint64
	d.open()
	for n, last := 0, -1; ; n++ {
		id, more := d.nextField(n, flagTable, last, &seen)
		if !more {
			break
		}
		if id < 0 {
			if d.err == nil {
				d.skip()
			}
			continue
		}
		last = id
		d.push(flagNames[id])
		switch id {
		case 0:
			d.bool(&f.Unpriced)
		case 1:
			d.bool(&f.Unowned)
		case 2:
			d.bool(&f.UnapprovedModel)
		case 3:
			d.bool(&f.UsageMismatch)
		case 4:
			d.bool(&f.RegionNotAllowed)
		case 5:
			d.bool(&f.MissingLabels)
		}
		d.pop()
	}
	d.close()
}

func (d *Decoder) labels(dst *map[string]string) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.object("an object of strings") {
		return
	}
	if d.ReuseLabels && *dst == nil && d.labelSets != nil {
		rest := d.data[d.i:]
		if set := &d.labelSets[labelSetSlot(rest)]; set.m != nil && len(set.m) == set.n && bytes.HasPrefix(rest, set.text) {
			d.lend(set, dst)
			d.i += len(set.text)
			return
		}
	}
	start, soft := d.i, d.soft
	m := *dst
	if m != nil && d.lent != nil && sameMap(m, d.lent) {
		// Labels given twice, the first kept in labelSets: a kept map
		// is never filled again, so the second goes into a copy.
		m = maps.Clone(m)
		*dst = m
	}
	if m == nil {
		m, d.spare.labels = d.spare.labels, nil
		if m != nil && d.lent != nil && sameMap(m, d.lent) {
			m = nil // kept in labelSets
		}
		if m == nil {
			m, d.free = d.free, nil
		}
		if m != nil {
			clear(m)
		} else {
			m = make(map[string]string)
		}
		*dst = m
	}
	d.lent, d.lentSet = nil, nil
	d.open()
	var prev string
	ascending := true
	for n := 0; d.nextKey(n); n++ {
		k := d.intern(d.key)
		if n > 0 && prev >= k {
			ascending = false
			d.loose = true // AppendJSON writes the keys sorted
		}
		prev = k
		// Keys in increasing order cannot repeat one.
		if !ascending {
			if _, dup := m[k]; dup {
				d.soft = true
			}
		}
		if d.credentialName(k) {
			d.credLabels = true
		}
		d.pushKey(d.key)
		var v string
		d.str(&v, true)
		d.pop()
		m[k] = v
	}
	d.close()
	// Only text written as AppendJSON writes labels, which decodes the
	// same in every mode and leaves nothing to report: handing its map
	// back then leaves the decode's outcome as it would have been.
	if d.ReuseLabels && !soft && !d.soft && !d.credLabels && d.err == nil && len(m) > 0 && plainLabelsEnd(d.data, start) == d.i {
		if d.labelSets == nil {
			d.labelSets = new([labelSetSlots]labelSet)
		}
		text := d.data[start:d.i]
		set := &d.labelSets[labelSetSlot(text)]
		// The map set held is no event's now: the caller passes its
		// one Event, which holds m.
		d.free = set.m
		set.text = append(set.text[:0], text...)
		set.m, set.n, d.lent, d.lentSet = m, len(m), m, set
		d.setIDs++
		set.id = d.setIDs
		set.pb = appendProtoLabels(set.pb[:0], m)
	}
}

// lend hands set's map to the caller as the labels *dst of this decode.
func (d *Decoder) lend(set *labelSet, dst *map[string]string) {
	if sp := d.spare.labels; sp != nil && d.free == nil && (d.lent == nil || !sameMap(sp, d.lent)) {
		d.free = sp // the caller's map of the last decode, not kept
	}
	d.spare.labels = nil
	*dst, d.lent, d.lentSet = set.m, set.m, set
}

// LabelsProto returns the labels fields AppendProto writes for m when m is
// the labels map the last Event decode handed back from the sets
// ReuseLabels keeps (which nothing changes: they name no credential), and
// nil otherwise. AppendProtoLabels takes it in place of encoding the map
// again.
func (d *Decoder) LabelsProto(m map[string]string) []byte {
	if set := d.lentLabels(m); set != nil {
		return set.pb
	}
	return nil
}

// LabelsID returns a number for m when m is the labels map the last Event
// decode handed back from the sets ReuseLabels keeps, unchanged since, and
// 0 otherwise: two decodes that hand back one set unchanged in between
// give one number, and no other labels ever get it, as a set's map is
// filled again only under a new number. What is worked out from an
// event's labels alone can be kept under it.
func (d *Decoder) LabelsID(m map[string]string) uint64 {
	if set := d.lentLabels(m); set != nil {
		return set.id
	}
	return 0
}

// lentLabels returns the set m came from when m is the map the last decode
// lent, unchanged since, or nil.
func (d *Decoder) lentLabels(m map[string]string) *labelSet {
	if set := d.lentSet; set != nil && m != nil && d.lent != nil && sameMap(m, d.lent) && len(m) == set.n {
		return set
	}
	return nil
}

// labelSet is a labels object's text and the map it decodes to.
type labelSet struct {
	text []byte
	m    map[string]string
	n    int
	pb   []byte // m as AppendProto writes it
	id   uint64 // LabelsID's number for m while it holds text
}

const (
	labelSetBits  = 10
	labelSetSlots = 1 << labelSetBits
)

// labelSetSeed seeds the hash of labelSetSlot.
var labelSetSeed = maphash.MakeSeed()

// labelSetSlot picks the slot of the labels object data starts with from
// its text up to the first '}': the object's end, unless a string in it
// holds a brace. A slot's text is compared in full before it is used.
func labelSetSlot(data []byte) uint64 {
	if j := bytes.IndexByte(data, '}'); j >= 0 {
		data = data[:j+1]
	}
	return maphash.Bytes(labelSetSeed, data) >> (64 - labelSetBits)
}

// sameMap reports whether a and b are one map.
func sameMap(a, b map[string]string) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}

// plainLabelsEnd returns the offset just past the labels object at
// data[start] when it is written as AppendJSON writes labels: at least one
// member, keys in increasing order, no space, and keys and values of
// printable ASCII other than '"', '\\', '<', '>' and '&'. Such text is
// what json.Marshal writes for the map it holds. Otherwise it returns -1.
func plainLabelsEnd(data []byte, start int) int {
	if start >= len(data) || data[start] != '{' {
		return -1
	}
	// plain returns the offset past the string at data[i], or -1.
	plain := func(i int) int {
		if i >= len(data) || data[i] != '"' {
			return -1
		}
		for i++; i < len(data); i++ {
			switch c := data[i]; {
			case c == '"':
				return i + 1
			case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
				return -1
			}
		}
		return -1
	}
	var prev []byte
	i := start + 1
	for {
		end := plain(i)
		if end < 0 || end >= len(data) || data[end] != ':' {
			return -1
		}
		key := data[i+1 : end-1]
		if prev != nil && string(prev) >= string(key) {
			return -1
		}
		prev = key
		if i = plain(end + 1); i < 0 || i >= len(data) {
			return -1
		}
		if data[i] == '}' {
			return i + 1
		}
		if data[i] != ',' {
			return -1
		}
		i++
	}
}

// labelsText copies the labels object at d.i into *dst and moves past it
// when it is written as AppendJSON writes labels: at least one member,
// keys in increasing order, no space, and keys and values of printable
// ASCII other than '"', '\\', '<', '>' and '&'. Such text is what
// json.Marshal writes for the map it holds. Otherwise it reports false and
// moves nothing.
func (d *Decoder) labelsText(dst *json.RawMessage) bool {
	start := d.i
	i := plainLabelsEnd(d.data, start)
	if i < 0 {
		return false
	}
	data := d.data
	buf := *dst
	if buf == nil {
		buf, d.spare.labelsJS = d.spare.labelsJS, nil
	}
	*dst = append(buf[:0], data[start:i]...)
	d.i = i
	return true
}

func (d *Decoder) calls(dst *map[string]int64) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	if !d.object("an object of integers") {
		return
	}
	m := *dst
	if m == nil {
		if m = d.spare.calls; m != nil {
			d.spare.calls = nil
			clear(m)
		} else {
			m = make(map[string]int64)
		}
		*dst = m
	}
	d.open()
	for n := 0; d.nextKey(n); n++ {
		k := d.intern(d.key)
		if _, dup := m[k]; dup {
			d.soft = true
		}
		d.pushKey(d.key)
		var v int64
		d.int(&v)
		d.pop()
		m[k] = v
	}
	d.close()
}

// strs decodes a string array as lines does.
func (d *Decoder) strs(dst *[]string) {
	if !d.array(func() bool { *dst = nil; return false }) {
		return
	}
	s := *dst
	if s == nil && d.spare.warnings != nil {
		s = d.spare.warnings[:0]
		clear(s[:cap(s)])
		d.spare.warnings = nil
	}
	i := 0
	for ; d.nextElem(i); i++ {
		if i >= len(s) {
			if i < cap(s) {
				s = s[:i+1]
			} else {
				s = append(s, "")
			}
		}
		d.pushIndex(i)
		d.str(&s[i], false)
		d.pop()
	}
	d.close()
	if i == 0 {
		s = []string{}
	}
	*dst = s[:i]
}

// array reports whether an array starts at d.i, consuming its '['; null
// calls onNull.
func (d *Decoder) array(onNull func() bool) bool {
	d.ws()
	switch d.peek() {
	case '[':
		d.open()
		return true
	case 'n':
		d.literal("null")
		return onNull()
	default:
		d.typeError("an array")
		return false
	}
}

// raw copies the JSON value at d.i, as json.RawMessage does (null too).
func (d *Decoder) raw(dst *json.RawMessage) {
	d.ws()
	start := d.i
	reduced := false
	if d.strict && d.peek() == '{' {
		// The usual raw_usage, counts only, is valid JSON that CheckJSON
		// passes and ReduceRawUsage keeps: one scan instead of three.
		if end, ok := countsValue(d.data, start, 0); ok {
			d.i, reduced = end, true
		}
	}
	if !reduced {
		d.skip()
		if d.err != nil {
			return
		}
	}
	v := d.data[start:d.i]
	if !reduced {
		// Reduced raw usage (countsValue) has no space, and no byte
		// appendCompact changes: as AppendJSON writes it.
		d.loose = true
	}
	if d.strict && !reduced && (v[0] == '{' || v[0] == '[') && !countsOnly(v) && len(CheckJSON(v, nil)) > 0 {
		d.soft = true
	}
	buf := *dst
	if buf == nil {
		buf, d.spare.raw = d.spare.raw, nil
	}
	*dst = append(buf[:0], v...)
	if reduced {
		d.reducedRaw, d.reducedLen = unsafe.SliceData(*dst), len(*dst)
	}
}

// HideSecrets is e.HideSecrets for the event d has just decoded with
// Event, unchanged since: the labels are looked at again only when the
// decode met one named like a credential, and a raw_usage that the decode
// found reduced already is not looked at again.
func (d *Decoder) HideSecrets(e *Event) {
	if d.credLabels {
		e.hideCredentials(d.credentialName)
		d.headEnd = -1 // perhaps changed
	} else if k := HashKey(e.APIKeyID); k != e.APIKeyID {
		e.APIKeyID = k
		d.headEnd = -1
	}
	if d.reducedRaw != nil && unsafe.SliceData(e.RawUsage) == d.reducedRaw && len(e.RawUsage) == d.reducedLen {
		return
	}
	if !reduced(e.RawUsage) {
		if len(e.RawUsage) > 0 {
			d.headEnd = -1
		}
		e.RawUsage = ReduceRawUsage(e.RawUsage)
	}
}

// credName is a label name and whether it is a credential's.
type credName struct {
	name string
	cred bool
}

// credentialName is CredentialName, remembered: a stream repeats a few
// label names in every event.
func (d *Decoder) credentialName(name string) bool {
	if len(name) == 0 || len(name) > maxIntern {
		return CredentialName(name)
	}
	if d.creds == nil {
		d.creds = new([internSize]credName)
	}
	slot := &d.creds[internHash(unsafe.Slice(unsafe.StringData(name), len(name)))&(internSize-1)]
	if slot.name != name {
		*slot = credName{name, CredentialName(name)}
	}
	return slot.cred
}

func (d *Decoder) time(dst *time.Time) {
	d.ws()
	start := d.i
	switch d.peek() {
	case '"':
		d.skipString()
	case 'n':
		d.literal("null")
		return
	default:
		if d.valueStart() {
			d.typeError("an RFC 3339 timestamp string such as \"2026-01-02T15:04:05Z\"")
		}
		return
	}
	if d.err != nil {
		return
	}
	if text := d.data[start+1 : d.i-1]; len(text) > 0 {
		if t, ok := d.parseUTCAt(text); ok {
			// AppendJSON writes no fraction for a whole second and
			// no trailing zero in one.
			if len(text) > 20 && text[len(text)-2] == '0' {
				d.loose = true
			}
			*dst = t
			return
		}
	}
	d.loose = true
	if err := dst.UnmarshalJSON(d.data[start:d.i]); err != nil {
		d.fail("%s: must be an RFC 3339 timestamp string such as \"2026-01-02T15:04:05Z\" (%v)", d.pathString(), err)
	}
}

// parseUTC parses the common form of an RFC 3339 time,
// "2006-01-02T15:04:05[.fraction]Z" with 1 to 9 digits of fraction, as
// time.Time's UnmarshalJSON does but without its generality; ok is false
// for any other text, which then takes UnmarshalJSON's path.
func parseUTC(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 {
		return t, false
	}
	minute, ok := parseMinute(b[:16])
	if !ok {
		return t, false
	}
	return parseSeconds(b[16:], minute)
}

// parseUTCAt is parseUTC through d's memory of the minute it parsed last:
// the times of a stream share their minute more often than not.
func (d *Decoder) parseUTCAt(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 {
		return t, false
	}
	if string(b[:16]) != string(d.minuteText[:]) || d.minuteText[0] == 0 {
		minute, ok := parseMinute(b[:16])
		if !ok {
			return t, false
		}
		copy(d.minuteText[:], b[:16])
		d.minute = minute
	}
	return parseSeconds(b[16:], d.minute)
}

// digits returns the number b's decimal digits spell, and false if a byte
// of b is no digit.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseMinute returns the Unix time of "2006-01-02T15:04", ok false for
// any other text or a date or time out of range.
func parseMinute(b []byte) (unix int64, ok bool) {
	if len(b) != 16 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 {
		return 0, false
	}
	// time.Date normalises and looks the zone up; the fields are in range
	// here, so the days since the epoch are arithmetic (the proleptic
	// Gregorian calendar, counted in 400-year eras from March 1st so that
	// a leap day ends a year).
	y, m := year, month
	if m <= 2 {
		y--
		m += 12
	}
	y += 400 // y ≥ -1: an era more keeps the divisions below floors
	era := y / 400
	yoe := y - era*400
	doy := (153*(m-3)+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era-1)*146097 + int64(doe) - 719468
	return days*86400 + int64(hour*3600+minute*60), true
}

// parseSeconds parses ":05[.fraction]Z" and returns the time that many
// seconds after the minute at Unix time minute.
func parseSeconds(b []byte, minute int64) (t time.Time, ok bool) {
	if len(b) < 4 || b[0] != ':' || b[len(b)-1] != 'Z' {
		return t, false
	}
	sec, ok := digits(b[1:3])
	if !ok || sec > 59 {
		return t, false
	}
	nsec := 0
	if frac := b[3 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return t, false
		}
		n, ok := digits(frac[1:])
		if !ok {
			return t, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	return time.Unix(minute+int64(sec), int64(nsec)).UTC(), true
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}

// str decodes a string or null (which keeps *dst); intern keeps short
// strings in the Decoder's table.
func (d *Decoder) str(dst *string, intern bool) {
	d.ws()
	switch d.peek() {
	case '"':
		s := d.text(&d.buf)
		if d.err != nil {
			return
		}
		if intern {
			*dst = d.intern(s)
		} else {
			*dst = string(s)
		}
	case 'n':
		d.literal("null")
	default:
		d.typeError("a string")
	}
}

// strInPlace is str for a string left in the input when it can be.
func (d *Decoder) strInPlace(dst *string) {
	d.ws()
	if d.peek() != '"' {
		d.str(dst, false)
		return
	}
	at := d.i + 1
	s := d.text(&d.buf)
	if d.err != nil {
		return
	}
	if len(s) > 0 && unsafe.SliceData(s) == &d.data[at] {
		*dst = unsafe.String(unsafe.SliceData(s), len(s))
	} else {
		*dst = string(s)
	}
}

func (d *Decoder) bool(dst *bool) {
	d.ws()
	switch d.peek() {
	case 't':
		if d.literal("true") {
			*dst = true
		}
	case 'f':
		if d.literal("false") {
			*dst = false
		}
	case 'n':
		d.literal("null")
	default:
		d.typeError("a boolean")
	}
}

// number returns the number literal at d.i, checking its syntax; nil for
// null, or when it is not a number (a type error then).
func (d *Decoder) number(what string) []byte {
	d.ws()
	switch c := d.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		d.skipNumber()
		if d.err != nil {
			return nil
		}
		return d.data[start:d.i]
	case c == 'n':
		d.literal("null")
	default:
		d.typeError(what)
	}
	return nil
}

func (d *Decoder) int(dst *int64) {
	d.ws()
	if v, ok := d.plainInt(); ok {
		*dst = v
		return
	}
	if lit := d.number("an integer"); lit != nil {
		if v, ok := d.parseInt(lit); ok {
			*dst = v
		}
	}
}

func (d *Decoder) intPtr(dst **int64) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	v, ok := d.plainInt()
	if !ok {
		lit := d.number("an integer")
		if lit == nil {
			return
		}
		if v, ok = d.parseInt(lit); !ok {
			return
		}
	}
	if *dst != nil {
		**dst = v
		return
	}
	*dst = d.newInt(v)
}

// plainInt reads the integer at d.i when it is written as canonical
// writers write counts: no sign, no leading zero, at most 18 digits, not
// followed by a fraction or an exponent. It scans and converts in one
// pass; for anything else it moves nothing and returns false, and the
// caller takes the general path (number, then parseInt), which gives the
// same value or the error.
func (d *Decoder) plainInt() (int64, bool) {
	data, i := d.data, d.i
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		return 0, false
	}
	var v int64
	j := i
	for j < len(data) && j-i <= 18 {
		c := data[j] - '0'
		if c > 9 {
			break
		}
		v = v*10 + int64(c)
		j++
	}
	if j-i > 18 || data[i] == '0' && j-i > 1 {
		return 0, false
	}
	if j < len(data) {
		if c := data[j]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	d.i = j
	return v, true
}

// parseInt parses an integer literal as encoding/json does for int64:
// fractions, exponents and values out of range are type errors.
func (d *Decoder) parseInt(lit []byte) (int64, bool) {
	neg := lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	if len(digits) > 0 && len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			if c < '0' || c > '9' {
				goto slow
			}
			v = v*10 + int64(c-'0')
		}
		if neg {
			if v == 0 {
				d.loose = true // -0
			}
			v = -v
		}
		return v, true
	}
slow:
	v, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		d.fail("%s: must be an integer between %d and %d, got %s", d.pathString(), int64(-1<<63), int64(1<<63-1), lit)
		return 0, false
	}
	return v, true
}

func (d *Decoder) newInt(v int64) *int64 {
	if n := len(d.spare.ints); n > 0 {
		p := d.spare.ints[n-1]
		d.spare.ints = d.spare.ints[:n-1]
		*p = v
		return p
	}
	if len(d.ints) == cap(d.ints) {
		// A new slab: the old one stays with the values that point into it.
		d.ints = make([]int64, 0, 32)
	}
	d.ints = append(d.ints, v)
	return &d.ints[len(d.ints)-1]
}

func (d *Decoder) float(dst *float64) {
	if lit := d.number("a number"); lit != nil {
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil {
			d.fail("%s: %s is out of range for a number", d.pathString(), lit)
			return
		}
		*dst = f
	}
}

func (d *Decoder) floatPtr(dst **float64) {
	d.ws()
	if d.peek() == 'n' {
		d.literal("null")
		*dst = nil
		return
	}
	lit := d.number("a number")
	if lit == nil {
		return
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		d.fail("%s: %s is out of range for a number", d.pathString(), lit)
		return
	}
	if *dst != nil {
		**dst = f
	} else {
		*dst = &f
	}
}

// intern returns b as a string, from the Decoder's table when b is short.
func (d *Decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxIntern {
		return string(b)
	}
	h := internHash(b)
	if d.tab == nil {
		d.tab = new([internSize][2]string)
		d.tabNext = new([internSize]uint8)
	}
	// Two ways: two strings of a stream that pick one set keep their
	// slots instead of replacing each other, a string each time.
	set := h & (internSize - 1)
	ways := &d.tab[set]
	if ways[0] == string(b) {
		d.tabNext[set] = 1
		return ways[0]
	}
	if ways[1] == string(b) {
		d.tabNext[set] = 0
		return ways[1]
	}
	w := d.tabNext[set]
	d.tabNext[set] = 1 - w
	ways[w] = string(b)
	return ways[w]
}

// internHash picks b's slot in the intern table, b 1 to maxIntern bytes
// long. It reads eight bytes a step (the last step overlapping the one
// before it) instead of one, as a byte-wise hash would: the table compares
// the whole string, so the hash only has to spread the strings of one
// stream, and a multiply per word does.
func internHash(b []byte) uint32 {
	const m = 0x9E3779B97F4A7C15
	n := len(b)
	var h uint64
	if n >= 8 {
		h = uint64(n)
		for i := 0; i+8 < n; i += 8 {
			h = (h ^ binary.LittleEndian.Uint64(b[i:])) * m
			h ^= h >> 29
		}
		h = (h ^ binary.LittleEndian.Uint64(b[n-8:])) * m
	} else {
		// Under eight bytes: the first and last four (overlapping when
		// shorter), or the first, middle and last byte.
		var w uint64
		if n >= 4 {
			w = uint64(binary.LittleEndian.Uint32(b))<<32 | uint64(binary.LittleEndian.Uint32(b[n-4:]))
		} else {
			w = uint64(b[0])<<16 | uint64(b[n/2])<<8 | uint64(b[n-1])
		}
		h = (w ^ uint64(n)<<56) * m
	}
	return uint32(h >> 32)
}

// validJSON reports whether data is one JSON value and nothing else, as
// json.Valid does, without its per-call setup.
func validJSON(data []byte) bool {
	d := decoders.Get().(*Decoder)
	defer decoders.Put(d)
	d.begin(data, false)
	d.ws()
	d.skip()
	d.ws()
	ok := d.err == nil && d.i == len(data)
	d.data = nil
	return ok
}

// Skip returns the offset just past the JSON value that starts at data[i]
// after optional whitespace, checking its syntax as json.Valid does; ok is
// false when no valid value starts there. It lets a caller split a stream
// of values (NDJSON, an array's elements) without encoding/json.
func (d *Decoder) Skip(data []byte, i int) (end int, ok bool) {
	d.begin(data, false)
	d.i = i
	d.ws()
	d.skip()
	end, ok = d.i, d.err == nil
	d.data, d.err = nil, nil
	return end, ok
}

// Syntax.

func (d *Decoder) peek() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

func (d *Decoder) ws() {
	if d.i < len(d.data) && d.data[d.i] > ' ' {
		return // no whitespace, the usual case
	}
	if j := skipWS(d.data, d.i); j != d.i {
		d.i, d.loose = j, true
	}
}

// open consumes the '{' or '[' at d.i.
func (d *Decoder) open() {
	d.i++
	d.depth++
	if d.depth > maxJSONDepth {
		d.failSyntax("exceeded max depth")
	}
}

func (d *Decoder) close() { d.depth-- }

// nextKey moves to the n-th key of the open object and reads it into
// d.kbuf and past its ':'; false at the object's end or on an error.
func (d *Decoder) nextKey(n int) bool {
	return d.keyStart(n) && d.keyRest()
}

// keyStart moves to the n-th key of the open object: past the comma, to
// the key's opening quote. It returns false at the object's end or on an
// error.
func (d *Decoder) keyStart(n int) bool {
	if d.err != nil {
		return false
	}
	d.ws()
	switch c := d.peek(); {
	case c == '}':
		d.i++
		return false
	case n == 0:
	case c == ',':
		d.i++
		d.ws()
	default:
		d.failSyntax("after object key:value pair")
		return false
	}
	if d.peek() != '"' {
		d.failSyntax("looking for beginning of object key string")
		return false
	}
	return true
}

// keyRest reads the key at d.i into d.key and moves past its colon.
func (d *Decoder) keyRest() bool {
	k := d.text(&d.kbuf)
	if d.err != nil {
		return false
	}
	d.key = k
	d.ws()
	if d.peek() != ':' {
		d.failSyntax("after object key")
		return false
	}
	d.i++
	return true
}

// nextElem moves to the n-th element of the open array; false at its end.
func (d *Decoder) nextElem(n int) bool {
	if d.err != nil {
		return false
	}
	d.ws()
	switch c := d.peek(); {
	case c == ']':
		d.i++
		return false
	case n == 0:
	case c == ',':
		d.i++
	default:
		d.failSyntax("after array element")
		return false
	}
	return true
}

func (d *Decoder) literal(lit string) bool {
	if lit[0] == 'n' {
		d.loose = true // AppendJSON leaves out what is null
	}
	if len(d.data)-d.i >= len(lit) && string(d.data[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	d.failSyntax("in literal " + lit)
	return false
}

// valueStart reports whether a JSON value can start at d.i; if not, it is
// a syntax error.
func (d *Decoder) valueStart() bool {
	switch c := d.peek(); {
	case c == '{', c == '[', c == '"', c == 't', c == 'f', c == 'n', c == '-', c >= '0' && c <= '9':
		return true
	}
	d.failSyntax("looking for beginning of value")
	return false
}

func (d *Decoder) skipNumber() {
	digits := func() bool {
		start := d.i
		d.i = skipDigits(d.data, start)
		return d.i > start
	}
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		digits()
	default:
		d.failSyntax("in numeric literal")
		return
	}
	if d.peek() == '.' {
		d.i++
		if !digits() {
			d.failSyntax("after decimal point in numeric literal")
			return
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !digits() {
			d.failSyntax("in exponent of numeric literal")
		}
	}
}

// text reads the string at d.i (its opening quote) and returns its text:
// a slice of the input when it needs no change, else decoded into *buf as
// encoding/json decodes strings (invalid UTF-8 and lone surrogates become
// U+FFFD). Invalid UTF-8 and lone surrogates are noted for CheckJSON.
func (d *Decoder) text(buf *[]byte) []byte {
	d.i++
	start := d.i
	if !d.strict || d.loose {
		d.i = plainRun(d.data, d.i)
	} else {
		// A strict decode, canonical so far, also notes what
		// appendString writes otherwise: safeRun stops at '<', '>' and
		// '&' too.
		for whole := unsafe.String(unsafe.SliceData(d.data), len(d.data)); ; d.i++ {
			if d.i = safeRun(whole, d.i); d.i >= len(d.data) {
				break
			}
			if c := d.data[d.i]; c != '<' && c != '>' && c != '&' {
				break
			}
			d.loose = true
		}
	}
	if d.i < len(d.data) && d.data[d.i] == '"' {
		d.i++
		return d.data[start : d.i-1]
	}
	b := append((*buf)[:0], d.data[start:d.i]...)
	for {
		if d.i >= len(d.data) {
			d.failSyntax("in string literal")
			return nil
		}
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			*buf = b
			return b
		case c < 0x20:
			d.failSyntax("in string literal")
			return nil
		case c == '\\':
			d.loose = true
			if d.i+1 >= len(d.data) {
				d.failSyntax("in string literal")
				return nil
			}
			switch e := d.data[d.i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4At(d.data, d.i+2)
				if !ok {
					d.failSyntax("in \\u hexadecimal character escape")
					return nil
				}
				d.i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := u4At(d.data, d.i); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							d.i += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					d.soft = true
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				d.failSyntax("in string escape code")
				return nil
			}
			d.i += 2
		case c < utf8.RuneSelf:
			if c == '<' || c == '>' || c == '&' {
				d.loose = true
			}
			b = append(b, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && n == 1 {
				d.soft = true
				b = utf8.AppendRune(b, r)
			} else {
				if r == '\u2028' || r == '\u2029' {
					d.loose = true
				}
				b = append(b, d.data[d.i:d.i+n]...)
			}
			d.i += n
		}
	}
}

// u4At reads a \uXXXX escape at i.
func u4At(data []byte, i int) (rune, bool) {
	if i+1 >= len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, false
	}
	return hex4At(data, i+2)
}

func hex4At(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipString moves past the string at d.i, checking its syntax and, in
// strict mode, its text.
func (d *Decoder) skipString() {
	d.i++
	for d.i < len(d.data) {
		if d.i = plainRun(d.data, d.i); d.i >= len(d.data) {
			break
		}
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return
		case c < 0x20:
			d.failSyntax("in string literal")
			return
		case c == '\\':
			if d.i+1 >= len(d.data) {
				d.failSyntax("in string literal")
				return
			}
			switch d.data[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				r, ok := hex4At(d.data, d.i+2)
				if !ok {
					d.failSyntax("in \\u hexadecimal character escape")
					return
				}
				d.i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := u4At(d.data, d.i); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
						d.i += 6
					} else {
						d.soft = true
					}
				}
			default:
				d.failSyntax("in string escape code")
				return
			}
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, n := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && n == 1 {
				d.soft = true
			}
			d.i += n
		}
	}
	d.failSyntax("in string literal")
}

// plainRun returns the index of the first byte from i on that a string
// literal cannot hold as it is (a quote, a backslash, a control byte or
// the start of a multi-byte character), or len(data). It tests eight
// bytes at a time. Each test below flags the high bit of every byte it
// matches, and of no byte below the first match (a false flag needs a
// borrow, which only a match below it gives): the lowest flag is the
// answer, so a short string ends without a byte loop.
func plainRun(data []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(data); i += 8 {
		w := binary.LittleEndian.Uint64(data[i:])
		q, bs := w^(ones*'"'), w^(ones*'\\')
		// a zero byte in q or bs, a byte below 0x20, a byte from 0x80
		if m := ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w | w) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(data); i++ {
		if c := data[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// skip moves past the value at d.i, checking its syntax, without recursion.
func (d *Decoder) skip() {
	if d.err == nil && d.depth+plainDepth <= maxJSONDepth {
		if end := skipPlain(d.data, d.i); end >= 0 {
			d.i = end
			return
		}
	}
	d.skipCareful()
}

// skipCareful is skip for any input: every error, and the notes for
// CheckJSON (invalid UTF-8, lone surrogates), come from here.
func (d *Decoder) skipCareful() {
	base := len(d.stack)
	defer func() { d.depth -= len(d.stack) - base; d.stack = d.stack[:base] }()
	for d.err == nil {
		d.ws()
		switch c := d.peek(); {
		case c == '{' || c == '[':
			d.open()
			if d.err != nil {
				return
			}
			d.ws()
			if c == '{' {
				d.stack = append(d.stack, '}')
				if d.peek() == '}' {
					break
				}
				if !d.skipKey() {
					return
				}
			} else {
				d.stack = append(d.stack, ']')
				if d.peek() == ']' {
					break
				}
			}
			continue
		case c == '"':
			d.skipString()
		case c == 't':
			d.literal("true")
		case c == 'f':
			d.literal("false")
		case c == 'n':
			d.literal("null")
		case c == '-' || c >= '0' && c <= '9':
			d.skipNumber()
		default:
			d.failSyntax("looking for beginning of value")
		}
		// After a value: close what ends here, then go on to the next.
		for d.err == nil {
			if len(d.stack) == base {
				return
			}
			d.ws()
			top := d.stack[len(d.stack)-1]
			c := d.peek()
			if c == top {
				d.i++
				d.stack = d.stack[:len(d.stack)-1]
				d.depth--
				continue
			}
			if c != ',' {
				d.failSyntax("after " + map[byte]string{'}': "object key:value pair", ']': "array element"}[top])
				return
			}
			d.i++
			if top == '}' {
				d.ws()
				if !d.skipKey() {
					return
				}
			}
			break
		}
	}
}

// plainDepth is the deepest nesting skipPlain follows.
const plainDepth = 64

// skipPlain returns the offset just past the JSON value at data[i] (after
// optional whitespace), for the values that canonical writers produce:
// strings of printable ASCII without escapes, at most plainDepth levels
// deep. It returns -1 for anything else, valid or not, which skip then
// reads the careful way from the start: every value it accepts, skip
// accepts with the same end and nothing to note, so only speed differs.
// It keeps its position in a local, not in the Decoder, and is most of
// the cost of skipping a field (the aggregator's cost lines).
func skipPlain(data []byte, i int) int {
	var stack [plainDepth]byte // the closing byte of each open container
	n := 0
	for {
		i = skipWS(data, i)
		if i >= len(data) {
			return -1
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if n == plainDepth {
				return -1
			}
			if i = skipWS(data, i+1); i >= len(data) {
				return -1
			}
			if c == '{' {
				if data[i] != '}' {
					stack[n], n = '}', n+1
					if i = plainKey(data, i); i < 0 {
						return -1
					}
					continue
				}
			} else if data[i] != ']' {
				stack[n], n = ']', n+1
				continue
			}
			i++ // an empty container is a whole value
		case c == '"':
			if i = plainString(data, i); i < 0 {
				return -1
			}
		case c == 't' || c == 'f' || c == 'n':
			lit := "null"
			switch c {
			case 't':
				lit = "true"
			case 'f':
				lit = "false"
			}
			if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
				return -1
			}
			i += len(lit)
		case c == '-' || c >= '0' && c <= '9':
			if i = plainNumber(data, i); i < 0 {
				return -1
			}
		default:
			return -1
		}
		// After a value: close what ends here, then go on to the next.
		for {
			if n == 0 {
				return i
			}
			if i = skipWS(data, i); i >= len(data) {
				return -1
			}
			c := data[i]
			if c == stack[n-1] {
				i, n = i+1, n-1
				continue
			}
			if c != ',' {
				return -1
			}
			i++
			if stack[n-1] == '}' {
				if i = plainKey(data, skipWS(data, i)); i < 0 {
					return -1
				}
			}
			break
		}
	}
}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString returns the offset past the string at data[i] (its opening
// quote), or -1 unless it is printable ASCII without escapes.
func plainString(data []byte, i int) int {
	if j := plainRun(data, i+1); j < len(data) && data[j] == '"' {
		return j + 1
	}
	return -1
}

// plainKey returns the offset past the key at data[i] and its ':', or -1.
func plainKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = plainString(data, i); i < 0 {
		return -1
	}
	if i = skipWS(data, i); i >= len(data) || data[i] != ':' {
		return -1
	}
	return i + 1
}

// plainNumber returns the offset past the JSON number at data[i], or -1.
func plainNumber(data []byte, i int) int {
	digits := func(i int) int {
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return -1
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i = digits(i + 1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// skipKey moves past a key and its ':'.
func (d *Decoder) skipKey() bool {
	if d.peek() != '"' {
		d.failSyntax("looking for beginning of object key string")
		return false
	}
	d.skipString()
	d.ws()
	if d.err != nil || d.peek() != ':' {
		d.failSyntax("after object key")
		return false
	}
	d.i++
	return true
}

// Errors.

func (d *Decoder) push(name string) {
	if d.track {
		d.path = append(d.path, pathStep{name: name, idx: -1})
	}
}

func (d *Decoder) pushKey(k []byte) {
	if d.track {
		d.path = append(d.path, pathStep{key: k, idx: -1})
	}
}

func (d *Decoder) pushIndex(i int) {
	if d.track {
		d.path = append(d.path, pathStep{idx: i})
	}
}

func (d *Decoder) pop() {
	if d.track {
		d.path = d.path[:len(d.path)-1]
	}
}

func (d *Decoder) pathString() string {
	var b strings.Builder
	for _, s := range d.path {
		switch {
		case s.idx >= 0:
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
			continue
		case b.Len() > 0:
			b.WriteByte('.')
		}
		if s.key != nil {
			b.WriteString(strings.ToValidUTF8(string(s.key), "\uFFFD"))
		} else {
			b.WriteString(s.name)
		}
	}
	if b.Len() == 0 {
		return "the event"
	}
	return b.String()
}

func (d *Decoder) pathWith(key []byte) string {
	d.pushKey(key)
	defer d.pop()
	return d.pathString()
}

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.i = len(d.data)
}

// typeError reports the value at d.i as not what the field needs.
func (d *Decoder) typeError(want string) {
	if d.err != nil || !d.valueStart() {
		return
	}
	d.fail("%s: must be %s, got %s", d.pathString(), want, jsonValueKind(d.peek()))
}

func jsonValueKind(c byte) string {
	if c == '{' {
		return "an object"
	}
	return jsonKindOf(c)
}

func (d *Decoder) failSyntax(msg string) {
	if d.err != nil {
		return
	}
	what := "end of input"
	if d.i < len(d.data) {
		what = strconv.QuoteRune(rune(d.data[d.i]))
		if c := d.data[d.i]; c >= utf8.RuneSelf {
			what = fmt.Sprintf("byte 0x%02x", c)
		}
	}
	d.fail("%w: unexpected %s %s at byte %d", errSyntax, what, msg, d.i)
}

var errSyntax = errors.New("malformed JSON")
