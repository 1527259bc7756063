package clickhouse

import (
	"reflect"
	"slices"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// columnMemory keeps the memory of an INSERT's columns for the next INSERT
// of the same table. The driver makes new, empty columns for every INSERT,
// so an events INSERT of 16,384 rows allocated (and the runtime zeroed,
// then collected) about 25 MB of column data each time: about half of the
// aggregator's allocated bytes. lend gives a new INSERT's columns the
// memory that take got back from the last one, by column name.
//
// The driver has no way to hand a column memory (its ColStrProvider is one
// setting for the whole process, reads included), so lend and take reach
// the buffers the driver's plain columns keep in their field col: a
// proto.ColStr for String, a slice of values for the numeric types. Any
// other column, or a driver that lays its columns out otherwise, gets no
// memory lent and allocates as before (TestStringColumnLayoutKnown makes
// that loud for String, the largest).
type columnMemory struct {
	kept map[string]reflect.Value // a col field's value, emptied
}

var colStrType = reflect.TypeFor[proto.ColStr]()

// stringColumnKnown says whether the driver's String column keeps a
// proto.ColStr in its field col.
var stringColumnKnown = func() bool {
	f, ok := reflect.TypeFor[chcol.String]().FieldByName("col")
	return ok && f.Type == colStrType
}()

// buffers returns c's field col, settable, when it is a proto.ColStr or a
// slice of values; else the zero Value.
func buffers(c chcol.Interface) reflect.Value {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	f := v.Elem().FieldByName("col")
	if !f.IsValid() {
		return reflect.Value{}
	}
	f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	if f.Kind() == reflect.Interface {
		// Decimal keeps a pointer to its proto column behind an interface.
		if f = f.Elem(); f.Kind() != reflect.Pointer || f.IsNil() {
			return reflect.Value{}
		}
		f = f.Elem()
	}
	if f.Type() != colStrType && (f.Kind() != reflect.Slice || f.Type().Elem().Kind() == reflect.Pointer) {
		return reflect.Value{}
	}
	return f
}

// picoUSD is the values of a Decimal(38, 12) column in pico-USD, which are
// the column's raw integers: send appends them as they are, where the
// driver would take a decimal.Decimal a row and allocate three times for
// each (appendTyped).
type picoUSD []int64

// decimals is v as the driver's Decimal column takes it otherwise.
func (v picoUSD) decimals() []decimal.Decimal {
	out := make([]decimal.Decimal, len(v))
	for i, p := range v {
		out[i] = picosToUSD(p)
	}
	return out
}

// picoSums is picoUSD for sums (cost_by_window's cost_usd), each within
// Decimal(38, 12)'s range (fitsDecimal38): the driver's Decimal takes a
// decimal.Decimal made from a big.Int, three or four allocations a row.
type picoSums []schemas.Picos128

// decimals is v as the driver's Decimal column takes it otherwise.
func (v picoSums) decimals() []decimal.Decimal {
	out := make([]decimal.Decimal, len(v))
	for i, p := range v {
		out[i], _ = sumToUSD(p) // in range: windowColumns checked
	}
	return out
}

// appendDecimals appends v to col, each value as the 128-bit integer
// word gives, when col is a Decimal column of scale 12 kept as
// Decimal128, and reports whether it did.
func appendDecimals[T any](col chcol.Interface, v []T, word func(T) proto.Decimal128) bool {
	raw := decimal12(col)
	if raw == nil {
		return false
	}
	for _, p := range v {
		*raw = append(*raw, word(p))
	}
	return true
}

// decimal12 returns the values of col when it is a Decimal column of
// scale 12 kept as Decimal128, else nil.
func decimal12(col chcol.Interface) *proto.ColDecimal128 {
	d, ok := col.(*chcol.Decimal)
	if !ok {
		return nil
	}
	s := reflect.ValueOf(d).Elem().FieldByName("scale")
	if !s.IsValid() || s.Kind() != reflect.Int || s.Int() != 12 {
		return nil
	}
	b := buffers(col)
	if !b.IsValid() || b.Type() != reflect.TypeFor[proto.ColDecimal128]() {
		return nil
	}
	return b.Addr().Interface().(*proto.ColDecimal128)
}

// emptied is b's memory with no values in it, and whether there is any.
func emptied(b reflect.Value) (reflect.Value, bool) {
	if b.Type() == colStrType {
		s := b.Addr().Interface().(*proto.ColStr)
		return reflect.ValueOf(proto.ColStr{Buf: s.Buf[:0], Pos: s.Pos[:0]}), cap(s.Buf) > 0 || cap(s.Pos) > 0
	}
	return reflect.ValueOf(b.Slice(0, 0).Interface()), b.Cap() > 0
}

// lend gives the columns of a new INSERT that hold nothing yet the memory
// kept for their names. m may be nil.
func (m *columnMemory) lend(cols []chcol.Interface) {
	if m == nil || len(m.kept) == 0 {
		return
	}
	for _, c := range cols {
		b := buffers(c)
		if !b.IsValid() {
			continue
		}
		kept, ok := m.kept[c.Name()]
		if !ok || kept.Type() != b.Type() {
			continue
		}
		if _, used := emptied(b); used {
			continue // a column with memory of its own keeps it
		}
		b.Set(kept)
		delete(m.kept, c.Name())
	}
}

// take keeps the memory of the columns of an INSERT the driver is done with
// (sent, or closed after an error) and takes it from them. m may be nil.
func (m *columnMemory) take(cols []chcol.Interface) {
	if m == nil {
		return
	}
	for _, c := range cols {
		b := buffers(c)
		if !b.IsValid() {
			continue
		}
		e, ok := emptied(b)
		if !ok {
			continue
		}
		if m.kept == nil {
			m.kept = map[string]reflect.Value{}
		}
		m.kept[c.Name()] = e
		b.Set(reflect.Zero(b.Type()))
	}
}

// columnCapacity is the text the String column c can take without
// growing, or -1 when c is no such column.
func columnCapacity(c chcol.Interface) int {
	b := buffers(c)
	if !b.IsValid() || b.Type() != colStrType {
		return -1
	}
	s := b.Addr().Interface().(*proto.ColStr)
	return cap(s.Buf) - len(s.Buf)
}

// appendTyped appends a block's values of one column to the driver's
// column col the way the driver would, but without its reflection, where
// a typed path applies: picoUSD and picoSums to a Decimal(38, 12), and
// rows of strings or of counts to an Array(String) or an Array(UInt64).
// It reports whether it did; if not, nothing was appended.
//
// The driver's Append of a [][]T reflects over every row and boxes every
// value, one allocation each: the 96 buckets of each window row's
// latency_hist were about a third of the aggregator's allocations.
func appendTyped(col chcol.Interface, data any) bool {
	switch d := data.(type) {
	case picoUSD:
		// Two's complement over 128 bits: the high word extends the sign.
		return appendDecimals(col, d, func(p int64) proto.Decimal128 { return proto.Decimal128{Low: uint64(p), High: uint64(p >> 63)} })
	case picoSums:
		return appendDecimals(col, d, func(p schemas.Picos128) proto.Decimal128 { return proto.Decimal128{Low: p.Lo, High: uint64(p.Hi)} })
	case [][]string:
		return appendArrays(col, "Array(String)", d, (*proto.ColStr).AppendArr,
			func(c *proto.ColStr, n int) { c.Pos = slices.Grow(c.Pos, n) })
	case [][]uint64:
		return appendArrays(col, "Array(UInt64)", d, func(c *proto.ColUInt64, r []uint64) { *c = append(*c, r...) },
			func(c *proto.ColUInt64, n int) { *c = slices.Grow(*c, n) })
	}
	return false
}

// appendArrays appends rows to col when it is a one-level Array of the
// type typ whose values the driver keeps in a P: room for all of them
// with grow, each row's values with add, and where the row ends to the
// Array's offsets.
func appendArrays[T, P any](col chcol.Interface, typ chcol.Type, rows [][]T, add func(*P, []T), grow func(*P, int)) bool {
	a, ok := col.(*chcol.Array)
	if !ok || a.Type() != typ {
		return false
	}
	ends, b := arrayEnds(a), buffers(a.Base())
	if ends == nil || !b.IsValid() || b.Type() != reflect.TypeFor[P]() {
		return false
	}
	values := b.Addr().Interface().(*P)
	total := 0
	for _, r := range rows {
		total += len(r)
	}
	grow(values, total)
	*ends = slices.Grow(*ends, len(rows))
	var end uint64 // where the column's last row ends
	if n := len(*ends); n > 0 {
		end = (*ends)[n-1]
	}
	for _, r := range rows {
		add(values, r)
		end += uint64(len(r))
		*ends = append(*ends, end)
	}
	return true
}

var colUInt64Type = reflect.TypeFor[proto.ColUInt64]()

// arrayEnds returns the offsets of a one-level Array: where each row's
// values end, counted from the column's first value; nil if the driver
// keeps them otherwise than in a proto.ColUInt64.
func arrayEnds(a *chcol.Array) *proto.ColUInt64 {
	offsets := reflect.ValueOf(a).Elem().FieldByName("offsets")
	if offsets.Kind() != reflect.Slice || offsets.Len() != 1 {
		return nil
	}
	o := offsets.Index(0)
	if o.Kind() != reflect.Pointer || o.IsNil() || o.Elem().Kind() != reflect.Struct {
		return nil
	}
	v := o.Elem().FieldByName("values")
	if v.Kind() != reflect.Struct {
		return nil
	}
	c := v.FieldByName("col")
	if !c.IsValid() || c.Type() != colUInt64Type {
		return nil
	}
	return (*proto.ColUInt64)(unsafe.Pointer(c.UnsafeAddr()))
}
