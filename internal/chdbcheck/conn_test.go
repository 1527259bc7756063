package chdbcheck

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// Values as chdb_serve.py answers them land in the Go types aivis scans
// into, as clickhouse-go would put them there.
func TestAssign(t *testing.T) {
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	var (
		s    string
		u64  uint64
		u8   uint8
		i32  int32
		f    float64
		d    decimal.Decimal
		tm   time.Time
		arr  []string
		ns   *string
		anyV any
		b    big.Int
	)
	for _, c := range []struct {
		json, typ string
		dst       any
		want      any
	}{
		{`"a\tb"`, "LowCardinality(String)", &s, "a\tb"},
		{`"18446744073709551615"`, "UInt64", &u64, uint64(18446744073709551615)},
		{`1`, "UInt8", &u8, uint8(1)},
		{`true`, "Bool", &u8, uint8(1)},
		{`-7`, "Int32", &i32, int32(-7)},
		{`0.1`, "Float64", &f, 0.1},
		{`"0.0024"`, "Decimal(38, 12)", &d, decimal.RequireFromString("0.0024")},
		{`"2026-01-02 00:00:00"`, "DateTime", &tm, day},
		{`"2026-01-02"`, "Date", &tm, day},
		{`["x","y"]`, "Array(LowCardinality(String))", &arr, []string{"x", "y"}},
		{`null`, "Nullable(String)", &ns, (*string)(nil)},
		{`"1.5"`, "Decimal(38, 12)", &anyV, decimal.RequireFromString("1.5")},
		{`"170141183460469231731687303715884105727"`, "Int128", &b, *new(big.Int).Lsh(big.NewInt(1), 127).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))},
	} {
		v := decodeJSON(t, c.json)
		if err := assign(reflect.ValueOf(c.dst), v, c.typ); err != nil {
			t.Errorf("%s as %s: %v", c.json, c.typ, err)
			continue
		}
		got := reflect.ValueOf(c.dst).Elem().Interface()
		if gd, ok := got.(decimal.Decimal); ok {
			if !gd.Equal(c.want.(decimal.Decimal)) {
				t.Errorf("%s as %s = %v, want %v", c.json, c.typ, got, c.want)
			}
			continue
		}
		if gb, ok := got.(big.Int); ok {
			wb := c.want.(big.Int)
			if gb.Cmp(&wb) != 0 {
				t.Errorf("%s as %s = %v, want %v", c.json, c.typ, &gb, &wb)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s as %s = %#v, want %#v", c.json, c.typ, got, c.want)
		}
	}
	if err := assign(reflect.ValueOf(&u8), decodeJSON(t, `"x"`), "UInt8"); err == nil {
		t.Error("a string into a UInt8 is no error")
	}
}

func decodeJSON(t testing.TB, s string) any {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Skip(err)
	}
	return v
}

// FuzzAssign: no answer from chDB, however odd, panics the conversion.
func FuzzAssign(f *testing.F) {
	for _, s := range []string{`"0.1"`, `["a"]`, `null`, `1e400`, `"2026-01-02"`, `[[1]]`, `{"a":1}`} {
		f.Add(s, "Decimal(38, 12)")
		f.Add(s, "Array(Nullable(String))")
	}
	f.Fuzz(func(t *testing.T, js, typ string) {
		v := decodeJSON(t, js)
		for _, dst := range []any{new(string), new(uint64), new(int8), new(float64), new(decimal.Decimal), new(time.Time),
			new([]string), new(*string), new(any), new(big.Int), new([][]uint32), new(bool)} {
			_ = assign(reflect.ValueOf(dst), v, typ)
		}
	})
}
