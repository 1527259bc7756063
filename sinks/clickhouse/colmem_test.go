package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// The driver's String column must be laid out as columnMemory expects;
// after a driver upgrade that changes it, INSERTs still work but allocate
// their columns anew, which this test makes loud.
func TestStringColumnLayoutKnown(t *testing.T) {
	if !stringColumnKnown {
		t.Fatal("chcol.String no longer holds a proto.ColStr named col: columnMemory lends nothing; update colmem.go for the driver")
	}
}

func TestColumnMemoryLendsAndTakes(t *testing.T) {
	newCol := func() chcol.Interface {
		c, err := chcol.Type("String").Column("labels", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var m columnMemory
	first := newCol()
	if err := first.AppendRow(strings.Repeat("x", 1000)); err != nil {
		t.Fatal(err)
	}
	capacity := columnCapacity(first) + 1000
	m.take([]chcol.Interface{first})
	if got := columnCapacity(first); got != 0 {
		t.Fatalf("take left %d bytes with the column it took them from", got)
	}
	second := newCol()
	m.lend([]chcol.Interface{second})
	if got := columnCapacity(second); got != capacity {
		t.Fatalf("lent column takes %d bytes without growing, want the kept %d", got, capacity)
	}
	if len(m.kept) != 0 {
		t.Fatal("lent memory is still kept for another column")
	}
	for _, v := range []string{"a", "", "bc"} {
		if err := second.AppendRow(v); err != nil {
			t.Fatal(err)
		}
	}
	if second.Rows() != 3 || second.Row(0, false) != "a" || second.Row(1, false) != "" || second.Row(2, false) != "bc" {
		t.Fatalf("lent column holds %d rows %v %v %v", second.Rows(), second.Row(0, false), second.Row(1, false), second.Row(2, false))
	}
	// A column with rows of its own keeps them.
	m.take([]chcol.Interface{second})
	third := newCol()
	_ = third.AppendRow("own")
	m.lend([]chcol.Interface{third})
	if third.Rows() != 1 || third.Row(0, false) != "own" {
		t.Fatal("lend replaced a column's own rows")
	}
	var none *columnMemory
	none.lend([]chcol.Interface{third})
	none.take([]chcol.Interface{third})

	// Numeric columns pass their slices on the same way.
	nums := func() chcol.Interface {
		c, err := chcol.Type("Int64").Column("input_tokens", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := nums()
	for i := range 100 {
		_ = a.AppendRow(int64(i))
	}
	m.take([]chcol.Interface{a})
	if a.Rows() != 0 || !m.kept["input_tokens"].IsValid() || m.kept["input_tokens"].Cap() < 100 {
		t.Fatalf("take of an Int64 column left %d rows and kept %v", a.Rows(), m.kept["input_tokens"])
	}
	b := nums()
	m.lend([]chcol.Interface{b})
	_ = b.AppendRow(int64(7))
	if b.Rows() != 1 || b.Row(0, false) != int64(7) || buffers(b).Cap() < 100 {
		t.Fatalf("lent Int64 column holds %d rows, cap %d", b.Rows(), buffers(b).Cap())
	}
	// A Nullable column is not one lend knows.
	n, err := chcol.Type("Nullable(String)").Column("cost_center", nil)
	if err != nil {
		t.Fatal(err)
	}
	if buffers(n).IsValid() {
		t.Fatal("buffers reaches into a Nullable column")
	}
}

// Writes of different sizes, one after the other through one Store, store
// every value exactly while the INSERTs pass their column memory on.
func TestWriteColumnMemoryExact(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	smallBlocks(t, 1_000)
	want := map[string]string{}
	next := 0
	for round, size := range []struct{ n, label int }{{2_500, 10}, {2_200, 400}, {300, 1}, {1_700, 50}} {
		events := testEvents(size.n)
		for i := range events {
			e := *events[i].Event
			e.EventID = fmt.Sprintf("01J0000000000000000%07d", next)
			next++
			e.Labels = map[string]string{"request": fmt.Sprintf("%d-%s", round, strings.Repeat(string(rune('a'+round)), i%size.label))}
			if round == 1 && i%2 == 0 {
				e.Owner.CostCenter = fmt.Sprintf("cc-%d", i) // a column the other rounds leave out
			}
			events[i].Event = &e
			want[e.EventID] = fmt.Sprintf(`{"request":%q}|%s`, e.Labels["request"], e.Owner.CostCenter)
		}
		if err := s.Write(ctx, events, nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		buf := s.eventBufs.Load()
		if buf == nil || !buf.mem.kept["labels"].IsValid() || !buf.mem.kept["input_tokens"].IsValid() {
			t.Fatalf("round %d: the Store kept no column memory for the next INSERT", round)
		}
	}
	storedAsWanted(t, s, want, "labels", "cost_center")
}

// appendTyped writes the raw integers the driver would have written from
// the costs' and the sums' decimals, and only into a Decimal of scale 12
// kept in 128 bits.
func TestAppendDecimals(t *testing.T) {
	max38, _ := schemas.PicosFromBig(maxDecimalPicos)
	for _, values := range []interface{ decimals() []decimal.Decimal }{
		picoUSD{0, 1, -1, 37_500, -37_500, 123_456_789_012_345_678, math.MaxInt64, math.MinInt64},
		picoSums{{}, schemas.PicosOf(1), schemas.PicosOf(-1), schemas.PicosOf(math.MaxInt64).Add(math.MaxInt64).Add(3),
			schemas.PicosOf(math.MinInt64).Add(math.MinInt64), max38, schemas.PicosOf(0).Sub(max38)},
	} {
		want := values.decimals()
		fast, err := chcol.Type("Decimal(38, 12)").Column("cost_usd", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !appendTyped(fast, values) {
			t.Fatalf("appendTyped refused %T for a Decimal(38, 12) column", values)
		}
		slow, _ := chcol.Type("Decimal(38, 12)").Column("cost_usd", nil)
		if _, err := slow.Append(want); err != nil {
			t.Fatal(err)
		}
		if fast.Rows() != len(want) || slow.Rows() != len(want) {
			t.Fatalf("%T: rows %d and %d, want %d", values, fast.Rows(), slow.Rows(), len(want))
		}
		if got, want := buffers(fast).Interface(), buffers(slow).Interface(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%T: raw values %v, the driver writes %v", values, got, want)
		}
		for i, d := range want {
			if got := fast.Row(i, false).(decimal.Decimal); !got.Equal(d) {
				t.Errorf("%T: row %d reads %s, want %s", values, i, got, d)
			}
		}
		for _, typ := range []string{"Decimal(38, 4)", "Decimal(18, 12)", "Decimal(76, 12)", "Int64"} {
			c, err := chcol.Type(typ).Column("cost_usd", nil)
			if err != nil {
				t.Fatal(err)
			}
			if appendTyped(c, values) || c.Rows() != 0 {
				t.Errorf("appendTyped wrote %T into a %s column", values, typ)
			}
		}
	}
}

// Costs of every sign and size are stored exactly.
func TestWriteCostsExact(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	costs := []int64{0, 1, -1, 37_500, -37_500, 999_999_999_999, 123_456_789_012_345_678, math.MaxInt64, math.MinInt64 + 1}
	events := testEvents(len(costs))
	want := map[string]decimal.Decimal{}
	for i, p := range costs {
		events[i].Event.CostPicos = p
		want[events[i].Event.EventID] = picosToUSD(p)
	}
	if err := s.Write(ctx, events, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := s.conn.Query(ctx, "SELECT event_id, toString(cost_usd) FROM "+TableEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			t.Fatal(err)
		}
		got, err := decimal.NewFromString(text)
		if err != nil || !got.Equal(want[id]) {
			t.Errorf("event %s stored cost %q, want %s", id, text, want[id])
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(costs) {
		t.Fatalf("read %d rows (%v), want %d", n, err, len(costs))
	}
}

// appendTyped writes an Array(String) or Array(UInt64) column as the
// driver's own Append does, byte for byte, over several blocks of one
// column (the offsets go on from the last block), and only into a
// one-level Array of that type.
func TestAppendArrays(t *testing.T) {
	strs := [][][]string{
		{{}, nil, {"snapshot_fallback: x"}, {"a", "", "b"}, {}},
		{{"x"}, {}, {"y", "z"}},
		{},
	}
	counts := [][][]uint64{
		{{}, {0, 1, 2}, nil, {math.MaxUint64}},
		{make([]uint64, schemas.LatencyBuckets), {7}},
	}
	sameAsDriver(t, "Array(String)", strs)
	sameAsDriver(t, "Array(UInt64)", counts)
	for _, typ := range []string{"Array(UInt32)", "Array(Array(String))", "String", "Array(Nullable(String))", "Array(LowCardinality(String))"} {
		c, err := chcol.Type(typ).Column("tags", nil)
		if err != nil {
			t.Fatal(err)
		}
		if appendTyped(c, strs[0]) || appendTyped(c, counts[0]) || c.Rows() != 0 {
			t.Errorf("appendTyped wrote into a %s column", typ)
		}
	}
}

func sameAsDriver[T any](t *testing.T, typ string, blocks [][][]T) {
	t.Helper()
	fast, err := chcol.Type(typ).Column("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	slow, _ := chcol.Type(typ).Column("c", nil)
	var want [][]T
	for _, b := range blocks {
		if !appendTyped(fast, b) {
			t.Fatalf("appendTyped refused an %s column; update colmem.go for the driver", typ)
		}
		if _, err := slow.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	if fast.Rows() != len(want) || slow.Rows() != len(want) {
		t.Fatalf("%s: rows %d and %d, want %d", typ, fast.Rows(), slow.Rows(), len(want))
	}
	var got, enc proto.Buffer
	fast.Encode(&got)
	slow.Encode(&enc)
	if !bytes.Equal(got.Buf, enc.Buf) {
		t.Fatalf("%s: encoded %x, the driver encodes %x", typ, got.Buf, enc.Buf)
	}
	for i, r := range want {
		if v := reflect.ValueOf(fast.Row(i, false)); v.Len() != len(r) || len(r) > 0 && !reflect.DeepEqual(v.Interface(), r) {
			t.Errorf("%s: row %d reads %v, want %v", typ, i, v, r)
		}
	}
}

// FuzzAppendArrays: any rows, split into any blocks, encode as the
// driver's own Append encodes them.
func FuzzAppendArrays(f *testing.F) {
	f.Add([]byte("a\x00bc\x01\x01d"), uint8(2))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// Rows of strings: 0x00 ends a string, 0x01 ends a row.
		var rows [][]string
		var counts [][]uint64
		var row []string
		var nums []uint64
		cur := []byte{}
		for _, c := range data {
			switch c {
			case 0:
				row, cur = append(row, string(cur)), []byte{}
				nums = append(nums, uint64(len(row))<<(len(data)%64))
			case 1:
				rows, counts, row, nums = append(rows, row), append(counts, nums), nil, nil
			default:
				cur = append(cur, c)
			}
		}
		rows, counts = append(rows, row), append(counts, nums)
		cut := int(split) % (len(rows) + 1)
		sameAsDriver(t, "Array(String)", [][][]string{rows[:cut], rows[cut:]})
		sameAsDriver(t, "Array(UInt64)", [][][]uint64{counts[:cut], counts[cut:]})
	})
}
