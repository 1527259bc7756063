package clickhouse

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

func TestMoneyConversions(t *testing.T) {
	max38, _ := schemas.PicosFromBig(maxDecimalPicos)
	for _, p := range []schemas.Picos128{
		{}, schemas.PicosOf(1), schemas.PicosOf(-37_500), schemas.PicosOf(math.MaxInt64), schemas.PicosOf(math.MinInt64),
		schemas.PicosOf(math.MaxInt64).Add(math.MaxInt64), max38, schemas.PicosOf(0).Sub(max38),
	} {
		d, err := sumToUSD(p)
		if err != nil {
			t.Fatalf("sumToUSD(%s): %v", p, err)
		}
		if d.Shift(12).BigInt().Cmp(p.Big()) != 0 {
			t.Errorf("sumToUSD(%s) = %s USD", p, d)
		}
		back, err := usdToSum(d)
		if err != nil || back != p {
			t.Errorf("usdToSum(%s) = %s, %v; want %s", d, back, err, p)
		}
	}
	if _, err := sumToUSD(max38.Add(1)); err == nil || !strings.Contains(err.Error(), "Decimal(38, 12)") {
		t.Errorf("sumToUSD(10^38) = %v, want an error", err)
	}
	// fitsDecimal38 draws the line where sumToUSD does.
	minInt128 := schemas.Picos128{Hi: math.MinInt64}
	maxInt128 := schemas.Picos128{Hi: math.MaxInt64, Lo: math.MaxUint64}
	r := rand.New(rand.NewPCG(1, 2))
	edges := []schemas.Picos128{{}, max38, max38.Add(1), max38.Add(-1), schemas.PicosOf(0).Sub(max38), schemas.PicosOf(-1).Sub(max38),
		minInt128, maxInt128, minInt128.Add(1), schemas.PicosOf(-1), {Hi: max38.Hi, Lo: math.MaxUint64}, {Hi: max38.Hi + 1}, {Hi: -max38.Hi - 1}}
	for range 1000 {
		hi := r.Int64N(max38.Hi + 2) // around the line on both sides
		if r.IntN(2) == 0 {
			hi = -hi - 1
		}
		edges = append(edges, schemas.Picos128{Hi: hi, Lo: r.Uint64()})
	}
	for _, p := range edges {
		_, err := sumToUSD(p)
		if fitsDecimal38(p) != (err == nil) {
			t.Errorf("fitsDecimal38(%s) = %v, but sumToUSD says %v", p, fitsDecimal38(p), err)
		}
	}
	if got, _ := schemas.PicosFromBig(maxDecimalPicos); got != maxDecimal128 {
		t.Errorf("maxDecimal128 is %s, want %s", maxDecimal128, got)
	}
	if _, err := usdToPicos(decimal.RequireFromString("9223372.036854775808")); err == nil {
		t.Error("usdToPicos accepted a cost beyond int64 pico-USD")
	}
	if v, err := usdToPicos(decimal.RequireFromString("9223372.036854775807")); err != nil || v != math.MaxInt64 {
		t.Errorf("usdToPicos(max) = %d, %v", v, err)
	}
	if _, err := usdToSum(decimal.RequireFromString("0.0000000000001")); err == nil {
		t.Error("usdToSum accepted a fraction of a pico-USD")
	}
}

// TestWriteCostBeyondInt64 stores window costs far beyond int64 pico-USD,
// up to the largest Decimal(38, 12), and reads them back exactly.
func TestWriteCostBeyondInt64(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	max38, _ := schemas.PicosFromBig(maxDecimalPicos)
	rows := testRows()[:3]
	rows[0].CostPicos = schemas.PicosOf(math.MaxInt64).Add(math.MaxInt64).Add(3) // 18446744073709551617
	rows[1].CostPicos = max38
	rows[2].CostPicos = schemas.PicosOf(0).Sub(max38)
	if err := s.Write(ctx, nil, rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var cost decimal.Decimal
		if err := s.conn.QueryRow(ctx, "SELECT cost_usd FROM "+TableWindows+" WHERE window_start = ? AND src_partition = ? AND through_offset = ?",
			r.WindowStart, uint32(r.SrcPartition), r.ThroughOffset).Scan(&cost); err != nil {
			t.Fatal(err)
		}
		if got, err := usdToSum(cost); err != nil || got != r.CostPicos {
			t.Errorf("cost_usd = %s (%v), want %s pico-USD", cost, err, r.CostPicos)
		}
	}
	bad := testRows()[:1]
	bad[0].CostPicos = max38.Add(1)
	if err := s.Write(ctx, nil, bad); err == nil || !strings.Contains(err.Error(), "Decimal(38, 12)") {
		t.Errorf("Write of a cost beyond Decimal(38, 12) = %v, want an error", err)
	}
}
