package schemas

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// AppendJSON appends e as json.Marshal writes it, byte for byte, without
// reflection. Like json.Marshal it assumes what a decoded or enriched event
// holds: raw_usage valid JSON, finite GPU numbers and times json.Marshal
// accepts (years 0–9999); for other values it writes what json.Marshal
// would refuse instead of an error.
func (e *Enriched) AppendJSON(buf []byte) []byte {
	return e.appendOwn(e.Event.appendFields(append(buf, '{')), nil)
}

// AppendJSONHead is AppendJSON with the event's members from
// schema_version to provider_cost_usd given as head, the text AppendJSON
// would write for them (see Decoder.CanonicalHead): copying it costs a
// fraction of encoding them again. enc, if not nil, keeps the text of
// what the next records may repeat.
func (e *Enriched) AppendJSONHead(buf, head []byte, enc *Encoder) []byte {
	buf = append(append(buf, '{'), head...)
	return e.appendOwn(e.Event.appendTail(buf), enc)
}

// An Encoder keeps the text of what an enriched record shares with the
// ones before it, for AppendJSONHead: enrich stamps a run of records with
// one clock reading, and the meter and unit price of a cost line repeat
// for every event of a price. Writing them is a fifth of encoding what
// enrich adds to an event. The zero value is ready.
type Encoder struct {
	at     time.Time
	atText []byte
	// lines is a two-way cache: each set holds two lines, and next
	// says which of them a miss replaces (the one used less recently).
	lines [lineSets][2]lineText
	next  [lineSets]uint8
	// owners, prices and tails are the same for the members an
	// enriched event adds around its cost lines and numbers: an owner's,
	// a price's, and those of a cost source, flags and model. Kept apart,
	// they hold a stream's owners and prices, not their pairs.
	owners     [textSets][2]ownerText
	ownersNext [textSets]uint8
	prices     [textSets][2]priceText
	pricesNext [textSets]uint8
	tails      [textSets][2]tailText
	tailsNext  [textSets]uint8
}

// The texts keep copies of what they were written from, in memory of
// their own that a miss writes again: a miss allocates nothing once the
// sets are warm.

// ownerText is the text of an owner: ,"owner":{…}.
type ownerText struct {
	team, project, costCenter, rule []byte
	text                            []byte
}

func (t *ownerText) holds(o *Owner) bool {
	return t.text != nil && string(t.team) == o.Team && string(t.project) == o.Project &&
		string(t.costCenter) == o.CostCenter && string(t.rule) == o.Rule
}

// priceText is the text of pricing up to its lines: ,"pricing":{…,"lines":[
// (or "lines":null).
type priceText struct {
	version, priceID []byte
	lines            bool // Pricing.Lines not nil
	text, cost       []byte
}

func (t *priceText) holds(p *Pricing) bool {
	return t.text != nil && string(t.priceID) == p.PriceID && string(t.version) == p.CatalogVersion && t.lines == (p.Lines != nil)
}

// tailText is the text of cost_source and flags, up to enriched_at, and
// of canonical_model.
type tailText struct {
	source, model []byte
	flags         Flags
	mid, post     []byte
}

func (t *tailText) holds(e *Enriched) bool {
	return t.mid != nil && string(t.model) == e.CanonicalModel && string(t.source) == e.CostSource && t.flags == e.Flags
}

// textSet is the set of the two-way caches' texts for the strings of
// address and length a and b: caches in front of a lookup pick their slot
// with MemoryWord and still compare the strings.
func textSet(a, b uint64) uint64 {
	return (a*31 + b) * 0x9e3779b97f4a7c15 >> (64 - textSetBits)
}

// appendOwn appends e's own members as Enriched.appendOwn does, from the
// text of earlier events of the same owner, price, flags and model.
func (c *Encoder) appendOwn(buf []byte, e *Enriched) []byte {
	o := &e.Owner
	set := textSet(MemoryWord(o.Team), MemoryWord(o.Project))
	ow, next := &c.owners[set], &c.ownersNext[set]
	var ot *ownerText
	switch {
	case ow[0].holds(o):
		ot, *next = &ow[0], 1
	case ow[1].holds(o):
		ot, *next = &ow[1], 0
	default:
		ot = &ow[*next]
		*next = 1 - *next
		ot.team, ot.project = append(ot.team[:0], o.Team...), append(ot.project[:0], o.Project...)
		ot.costCenter, ot.rule = append(ot.costCenter[:0], o.CostCenter...), append(ot.rule[:0], o.Rule...)
		ot.text = e.appendOwner(ot.text[:0])
	}
	p := &e.Pricing
	set = textSet(MemoryWord(p.PriceID), MemoryWord(p.CatalogVersion))
	pw, next := &c.prices[set], &c.pricesNext[set]
	var pt *priceText
	switch {
	case pw[0].holds(p):
		pt, *next = &pw[0], 1
	case pw[1].holds(p):
		pt, *next = &pw[1], 0
	default:
		pt = &pw[*next]
		*next = 1 - *next
		pt.version, pt.priceID, pt.lines = append(pt.version[:0], p.CatalogVersion...), append(pt.priceID[:0], p.PriceID...), p.Lines != nil
		pt.text, pt.cost = e.appendPricingHead(pt.text[:0]), e.appendOwnCost(pt.cost[:0])
	}
	set = textSet(MemoryWord(e.CanonicalModel), MemoryWord(e.CostSource))
	tw, next := &c.tails[set], &c.tailsNext[set]
	var tt *tailText
	switch {
	case tw[0].holds(e):
		tt, *next = &tw[0], 1
	case tw[1].holds(e):
		tt, *next = &tw[1], 0
	default:
		tt = &tw[*next]
		*next = 1 - *next
		tt.source, tt.model, tt.flags = append(tt.source[:0], e.CostSource...), append(tt.model[:0], e.CanonicalModel...), e.Flags
		tt.mid, tt.post = e.appendOwnMid(tt.mid[:0]), e.appendOwnPost(tt.post[:0])
	}
	buf = append(append(buf, ot.text...), pt.text...)
	for i := range p.Lines {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = c.appendLine(buf, &p.Lines[i])
	}
	buf = appendInt(append(buf, pt.cost...), e.CostPicos)
	buf = c.appendTime(append(buf, tt.mid...), e.EnrichedAt)
	return append(buf, tt.post...)
}

// lineText is the text of a cost line around its numbers.
type lineText struct {
	meter, price []byte
	pre          []byte // {"meter":…,"quantity":
	mid          []byte // ,"unit_price_per_1m":…,"cost_picos":
}

const (
	textSetBits = 7 // 256 texts: the owners, prices or models of a stream
	textSets    = 1 << textSetBits
	lineSetBits = 8 // 512 lines: the cost lines of a few hundred prices in use
	lineSets    = 1 << lineSetBits
)

// appendTime appends t as AppendJSON writes it.
func (c *Encoder) appendTime(buf []byte, t time.Time) []byte {
	// == on time.Time compares the instant and the location: equal values
	// have one text.
	if c.atText == nil || t != c.at {
		c.at, c.atText = t, appendTime(c.atText[:0], t)
	}
	return append(buf, c.atText...)
}

// appendLine appends l as AppendJSON writes a cost line.
func (c *Encoder) appendLine(buf []byte, l *CostLine) []byte {
	// The slot is picked by where the strings are (a price's lines share
	// the catalog's); the strings are compared in full with copies, which
	// stay right when the memory of l's strings is written again.
	// Two ways, so that two lines that pick one set (by chance of where
	// the catalog's strings are) do not evict each other for good.
	set := lineSet(l)
	ways := &c.lines[set]
	var t *lineText
	switch {
	case ways[0].holds(l):
		t, c.next[set] = &ways[0], 1
	case ways[1].holds(l):
		t, c.next[set] = &ways[1], 0
	default:
		w := c.next[set]
		t, c.next[set] = &ways[w], 1-w
		t.meter, t.price = append(t.meter[:0], l.Meter...), append(t.price[:0], l.UnitPrice...)
		t.pre = appendString(append(t.pre[:0], `{"meter":`...), l.Meter)
		t.pre = append(t.pre, `,"quantity":`...)
		t.mid = appendString(append(t.mid[:0], `,"unit_price_per_1m":`...), l.UnitPrice)
		t.mid = append(t.mid, `,"cost_picos":`...)
	}
	buf = appendInt(append(buf, t.pre...), l.Quantity)
	buf = appendInt(append(buf, t.mid...), l.CostPicos)
	return append(buf, '}')
}

// holds reports whether t is the text of l's meter and price.
func (t *lineText) holds(l *CostLine) bool {
	return t.pre != nil && string(t.meter) == l.Meter && string(t.price) == l.UnitPrice
}

// lineSet is the set of Encoder.lines l's text is kept in.
func lineSet(l *CostLine) uint64 {
	return (MemoryWord(l.Meter)*31 + MemoryWord(l.UnitPrice)) * 0x9e3779b97f4a7c15 >> (64 - lineSetBits)
}

// MemoryWord is s's data address plus its length: the same for two
// strings that share their memory. Caches in front of a lookup pick their
// slot with it when the strings they see are mostly interned (a Decoder's
// short strings, a catalog's names); they still compare the strings.
func MemoryWord(s string) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.StringData(s)))) + uint64(len(s))
}

// appendOwn appends the members an enriched event adds to its event's,
// and the closing brace, through enc if not nil.
func (e *Enriched) appendOwn(buf []byte, enc *Encoder) []byte {
	if enc != nil {
		return enc.appendOwn(buf, e)
	}
	buf = e.appendOwnPre(buf)
	for i := range e.Pricing.Lines {
		if i > 0 {
			buf = append(buf, ',')
		}
		l := &e.Pricing.Lines[i]
		buf = append(buf, `{"meter":`...)
		buf = appendString(buf, l.Meter)
		buf = append(buf, `,"quantity":`...)
		buf = appendInt(buf, l.Quantity)
		buf = append(buf, `,"unit_price_per_1m":`...)
		buf = appendString(buf, l.UnitPrice)
		buf = append(buf, `,"cost_picos":`...)
		buf = appendInt(buf, l.CostPicos)
		buf = append(buf, '}')
	}
	buf = appendInt(e.appendOwnCost(buf), e.CostPicos)
	buf = appendTime(e.appendOwnMid(buf), e.EnrichedAt)
	return e.appendOwnPost(buf)
}

// appendOwnPre appends the owner and pricing members up to the first
// cost line: what appendOwn writes before a number.
func (e *Enriched) appendOwnPre(buf []byte) []byte {
	return e.appendPricingHead(e.appendOwner(buf))
}

// appendOwner appends the owner member.
func (e *Enriched) appendOwner(buf []byte) []byte {
	buf = append(buf, `,"owner":{"team":`...)
	buf = appendString(buf, e.Owner.Team)
	buf = append(buf, `,"project":`...)
	buf = appendString(buf, e.Owner.Project)
	if e.Owner.CostCenter != "" {
		buf = append(buf, `,"cost_center":`...)
		buf = appendString(buf, e.Owner.CostCenter)
	}
	buf = append(buf, `,"rule":`...)
	buf = appendString(buf, e.Owner.Rule)
	return append(buf, '}')
}

// appendPricingHead appends the pricing member up to its first cost line.
func (e *Enriched) appendPricingHead(buf []byte) []byte {
	buf = append(buf, `,"pricing":{"catalog_version":`...)
	buf = appendString(buf, e.Pricing.CatalogVersion)
	buf = append(buf, `,"price_id":`...)
	buf = appendString(buf, e.Pricing.PriceID)
	if e.Pricing.Lines == nil {
		return append(buf, `,"lines":null`...)
	}
	return append(buf, `,"lines":[`...)
}

// appendOwnCost appends what comes between the cost lines and cost_picos.
func (e *Enriched) appendOwnCost(buf []byte) []byte {
	if e.Pricing.Lines != nil {
		buf = append(buf, ']')
	}
	return append(buf, `},"cost_picos":`...)
}

// appendOwnMid appends what comes between cost_picos and enriched_at.
func (e *Enriched) appendOwnMid(buf []byte) []byte {
	buf = append(buf, `,"cost_source":`...)
	buf = appendString(buf, e.CostSource)
	buf = append(buf, `,"flags":{`...)
	f, n := e.Flags, 0
	for _, fl := range [...]struct {
		on   bool
		name string
	}{{f.Unpriced, `"unpriced":true`}, {f.Unowned, `"unowned":true`}, {f.UnapprovedModel, `"unapproved_model":true`}, {f.UsageMismatch, `"usage_mismatch":true`},
		{f.RegionNotAllowed, `"region_not_allowed":true`}, {f.MissingLabels, `"missing_labels":true`}} {
		if fl.on {
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, fl.name...)
			n++
		}
	}
	return append(buf, `},"enriched_at":`...)
}

// appendOwnPost appends what follows enriched_at.
func (e *Enriched) appendOwnPost(buf []byte) []byte {
	buf = append(buf, `,"canonical_model":`...)
	buf = appendString(buf, e.CanonicalModel)
	return append(buf, '}')
}

// AppendJSON appends e as json.Marshal writes it (see Enriched.AppendJSON).
func (e *Event) AppendJSON(buf []byte) []byte {
	return append(e.appendFields(append(buf, '{')), '}')
}

// appendFields appends e's members without the braces.
func (e *Event) appendFields(buf []byte) []byte {
	return e.appendTail(e.appendHead(buf))
}

// appendHead appends e's members from schema_version to
// provider_cost_usd: those enrich passes on as they are once their
// secrets are hidden.
func (e *Event) appendHead(buf []byte) []byte {
	buf = append(buf, `"schema_version":`...)
	buf = appendString(buf, e.SchemaVersion)
	buf = append(buf, `,"event_id":`...)
	buf = appendString(buf, e.EventID)
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, e.Time)
	buf = append(buf, `,"kind":`...)
	buf = appendString(buf, e.Kind)
	buf = append(buf, `,"source":`...)
	buf = appendString(buf, e.Source)
	buf = appendOptString(buf, `,"api_key_id":`, e.APIKeyID)
	if len(e.Labels) > 0 {
		buf = append(buf, `,"labels":{`...)
		var arr [16]string
		keys := arr[:0]
		for k := range e.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = appendString(buf, e.Labels[k])
		}
		buf = append(buf, '}')
	} else if len(e.LabelsJSON) > 0 {
		buf = append(append(buf, `,"labels":`...), e.LabelsJSON...)
	}
	buf = appendOptString(buf, `,"provider":`, e.Provider)
	buf = appendOptString(buf, `,"model":`, e.Model)
	buf = appendOptString(buf, `,"operation":`, e.Operation)
	buf = appendOptString(buf, `,"status":`, e.Status)
	buf = appendOptString(buf, `,"error_type":`, e.ErrorType)
	buf = appendOptInt(buf, `,"latency_ms":`, e.LatencyMs)
	buf = appendOptString(buf, `,"service_tier":`, e.ServiceTier)
	if e.Streaming {
		buf = append(buf, `,"streaming":true`...)
	}
	if e.Usage != nil {
		buf = e.Usage.AppendJSON(append(buf, `,"usage":`...))
	}
	if len(e.RawUsage) > 0 {
		buf = appendCompact(append(buf, `,"raw_usage":`...), e.RawUsage)
	}
	return appendOptString(buf, `,"provider_cost_usd":`, e.ProviderCostUSD)
}

// appendTail appends e's members from warnings on, each with its leading
// comma.
func (e *Event) appendTail(buf []byte) []byte {
	if len(e.Warnings) > 0 {
		buf = append(buf, `,"warnings":[`...)
		for i, w := range e.Warnings {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, w)
		}
		buf = append(buf, ']')
	}
	if g := e.GPU; g != nil {
		buf = append(buf, `,"gpu":{"gpu_model":`...)
		buf = appendString(buf, g.GPUModel)
		buf = appendOptString(buf, `,"gpu_uuid":`, g.GPUUUID)
		buf = appendOptString(buf, `,"mig_profile":`, g.MIGProfile)
		buf = appendOptString(buf, `,"host":`, g.Host)
		buf = appendOptString(buf, `,"cluster":`, g.Cluster)
		buf = appendOptString(buf, `,"namespace":`, g.Namespace)
		buf = appendOptString(buf, `,"pod":`, g.Pod)
		buf = appendOptString(buf, `,"container":`, g.Container)
		if g.PID != 0 {
			buf = appendInt(append(buf, `,"pid":`...), g.PID)
		}
		buf = appendFloat(append(buf, `,"interval_seconds":`...), g.IntervalSeconds)
		buf = appendFloat(append(buf, `,"allocated_gpu_seconds":`...), g.AllocatedSeconds)
		buf = appendFloat(append(buf, `,"busy_gpu_seconds":`...), g.BusySeconds)
		if g.MemoryBytes != 0 {
			buf = appendInt(append(buf, `,"memory_bytes":`...), g.MemoryBytes)
		}
		if g.EnergyJoules != nil {
			buf = appendFloat(append(buf, `,"energy_joules":`...), *g.EnergyJoules)
		}
		buf = appendOptString(buf, `,"pricing_category":`, g.PricingCategory)
		buf = appendOptString(buf, `,"owner_kind":`, g.OwnerKind)
		buf = appendOptString(buf, `,"owner_id":`, g.OwnerID)
		if g.MemoryMaxBytes != 0 {
			buf = appendInt(append(buf, `,"memory_max_bytes":`...), g.MemoryMaxBytes)
		}
		buf = appendOptString(buf, `,"parent_gpu_uuid":`, g.ParentGPUUUID)
		buf = appendOptString(buf, `,"attribution":`, g.Attribution)
		buf = append(buf, '}')
	}
	buf = appendOptString(buf, `,"end_user":`, e.EndUser)
	if len(e.Tags) > 0 {
		buf = append(buf, `,"tags":[`...)
		for i, t := range e.Tags {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, t)
		}
		buf = append(buf, ']')
	}
	buf = appendOptInt(buf, `,"request_bytes":`, e.RequestBytes)
	buf = appendOptInt(buf, `,"response_bytes":`, e.ResponseBytes)
	buf = appendOptString(buf, `,"provider_region":`, e.ProviderRegion)
	buf = appendOptString(buf, `,"provider_endpoint":`, e.ProviderEndpoint)
	buf = appendOptInt(buf, `,"request_count":`, e.RequestCount)
	return buf
}

// AppendJSON appends u as json.Marshal writes it.
func (u *Usage) AppendJSON(buf []byte) []byte {
	start := len(buf)
	buf = append(buf, '{')
	for i, p := range u.counts() {
		if i == 12 && len(u.ServerToolCalls) > 0 {
			// server_tool_calls comes before provider_total_tokens.
			buf = append(buf, `,"server_tool_calls":{`...)
			var arr [16]string
			keys := arr[:0]
			for k := range u.ServerToolCalls {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for j, k := range keys {
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = appendString(buf, k)
				buf = appendInt(append(buf, ':'), u.ServerToolCalls[k])
			}
			buf = append(buf, '}')
		}
		if *p != nil {
			buf = append(buf, ',', '"')
			buf = append(buf, usageNames[i]...)
			buf = append(buf, '"', ':')
			buf = appendInt(buf, **p)
		}
	}
	if len(buf) > start+1 {
		buf[start+1] = '{' // the first member's comma
		buf = slices.Delete(buf, start, start+1)
	}
	return append(buf, '}')
}

// AppendUsageJSON appends what json.Marshal(u) writes: null for nil.
func AppendUsageJSON(buf []byte, u *Usage) []byte {
	if u == nil {
		return append(buf, "null"...)
	}
	return u.AppendJSON(buf)
}

func appendOptString(buf []byte, member, s string) []byte {
	if s == "" {
		return buf
	}
	return appendString(append(buf, member...), s)
}

func appendOptInt(buf []byte, member string, p *int64) []byte {
	if p == nil {
		return buf
	}
	return appendInt(append(buf, member...), *p)
}

func appendTime(buf []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	if t.Location() != time.UTC || y < 0 || y > 9999 {
		buf = append(buf, '"')
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		return append(buf, '"')
	}
	// What AppendFormat writes for a UTC time, at a fifth of its cost:
	// every event carries two.
	h, mi, sec := t.Clock()
	buf = append(buf, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+sec/10), byte('0'+sec%10))
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		buf = append(buf, frac[:n]...)
	}
	return append(buf, 'Z', '"')
}

// appendFloat writes f as encoding/json does: like ES6, exponents only
// below 1e-6 and from 1e21.
func appendFloat(buf []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes that json.Marshal writes as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// safeRun returns the index of the first byte of s from i on that
// appendString cannot copy as it is (see jsonSafe; bytes from 0x80 start a
// multi-byte character), or len(s). It tests eight bytes at a time, as
// plainRun does, and takes the lowest flagged byte as the answer. The last
// one to seven bytes are tested at once too, as one word put together
// from them (most strings an event carries are shorter than eight bytes).
func safeRun(s string, i int) int {
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	for ; i+8 <= len(b); i += 8 {
		if m := unsafeBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	switch rest := len(b) - i; {
	case rest >= 4:
		// Two words of four, overlapping when rest is under eight: word
		// bytes 0-3 are b[i:i+4], 4-7 are b[len-4:].
		w := uint64(binary.LittleEndian.Uint32(b[i:])) | uint64(binary.LittleEndian.Uint32(b[len(b)-4:]))<<32
		if m := unsafeBytes(w); m != 0 {
			if k := bits.TrailingZeros64(m) / 8; k < 4 {
				return i + k
			}
			return len(b) - 8 + bits.TrailingZeros64(m)/8
		}
		return len(b)
	case rest > 0:
		// The first, middle and last of one to three bytes, then bytes
		// appendString copies ('a').
		mid := i + rest/2
		w := uint64(b[i]) | uint64(b[mid])<<8 | uint64(b[len(b)-1])<<16 | 0x6161616161<<24
		if m := unsafeBytes(w); m != 0 {
			switch bits.TrailingZeros64(m) / 8 {
			case 0:
				return i
			case 1:
				return mid
			}
			return len(b) - 1
		}
		return len(b)
	}
	return i
}

// unsafeBytes flags (in bit 7 of each byte) the bytes of w that jsonSafe
// refuses or that start a multi-byte character; the lowest flag is exact,
// those above it may not be (a borrow carries into them). Pairs of the
// bytes it looks for differ in one bit, which one test ignores: '"' (0x22)
// and '&' (0x26) in 0x04, '<' (0x3c) and '>' (0x3e) in 0x02.
func unsafeBytes(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	zero := func(x uint64) uint64 { return (x - ones) &^ x }
	return (zero((w|ones*0x04)^(ones*'&')) | zero((w|ones*0x02)^(ones*'>')) | zero(w^(ones*'\\')) |
		(w-ones*0x20)&^w | w) & highs
}

// appendString appends s quoted as json.Marshal quotes it: HTML
// characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i = safeRun(s, i+1)
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '\\', '"':
				buf = append(buf, '\\', c)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += n
			start = i
			continue
		}
		i += n
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// compactAlready reports whether raw holds none of the bytes that
// appendCompact may change: space, a control byte below 0x0e (which
// covers tab, line feed and carriage return), '<', '>', '&' or a byte
// from 0x80. Such valid JSON is its own compact form, whatever its
// strings hold. It tests eight bytes at a time; most raw_usage passes.
func compactAlready(raw []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	zero := func(x uint64) uint64 { return (x - ones) &^ x }
	i := 0
	for ; i+8 <= len(raw); i += 8 {
		w := binary.LittleEndian.Uint64(raw[i:])
		if (zero(w^(ones*' '))|zero(w^(ones*'<'))|zero(w^(ones*'>'))|zero(w^(ones*'&'))|(w-ones*0x0e)&^w|w)&highs != 0 {
			return false
		}
	}
	for ; i < len(raw); i++ {
		if c := raw[i]; c == ' ' || c < 0x0e || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			return false
		}
	}
	return true
}

// appendCompact appends the valid JSON raw as json.Marshal writes a
// json.RawMessage: without insignificant space, HTML characters, U+2028
// and U+2029 escaped.
func appendCompact(buf []byte, raw json.RawMessage) []byte {
	if compactAlready(raw) {
		return append(buf, raw...)
	}
	inString, start := false, 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			buf = append(buf, raw[start:i]...)
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8:
			buf = append(buf, raw[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xF])
			i += 2
			start = i + 1
		case inString:
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			buf = append(buf, raw[start:i]...)
			start = i + 1
		}
	}
	return append(buf, raw[start:]...)
}

// digitPairs holds "00" to "99", the two digits of each value below 100.
const digitPairs = "0001020304050607080910111213141516171819" +
	"2021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859" +
	"6061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendInt appends v in decimal, as strconv.AppendInt(buf, v, 10) does:
// it writes the digits in place, two at a time, the last eight of a large
// value with 32-bit arithmetic, where strconv formats into a scratch
// array with 64-bit divisions and copies it.
func appendInt(buf []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		buf = append(buf, '-')
		u = -u
	}
	if u < 10 {
		return append(buf, byte('0'+u))
	}
	n := decimalLen(u)
	at := len(buf)
	buf = slices.Grow(buf, n)[:at+n]
	i := at + n
	for u >= 1e8 {
		lo := uint32(u % 1e8)
		u /= 1e8
		for range 4 {
			d := lo % 100 * 2
			lo /= 100
			i -= 2
			buf[i], buf[i+1] = digitPairs[d], digitPairs[d+1]
		}
	}
	w := uint32(u)
	for w >= 100 {
		d := w % 100 * 2
		w /= 100
		i -= 2
		buf[i], buf[i+1] = digitPairs[d], digitPairs[d+1]
	}
	if w >= 10 {
		buf[i-2], buf[i-1] = digitPairs[w*2], digitPairs[w*2+1]
	} else {
		buf[i-1] = byte('0' + w)
	}
	return buf
}

// decimalLen is the number of decimal digits of u.
func decimalLen(u uint64) int {
	// bits.Len64 gives the power of two; 1233/4096 is close to log10(2).
	n := (bits.Len64(u) * 1233) >> 12
	if u >= pow10[n] {
		n++
	}
	return n
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}
