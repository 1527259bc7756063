package schemas

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestPicos128AgainstBig checks the 128-bit arithmetic against math/big
// on sums of random int64s, extremes included, that leave the int64 range.
func TestPicos128AgainstBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	extremes := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
	for run := 0; run < 200; run++ {
		var p Picos128
		want := new(big.Int)
		for i := 0; i < 50; i++ {
			v := rng.Int64()
			switch rng.IntN(4) {
			case 0:
				v = -v
			case 1:
				v = extremes[rng.IntN(len(extremes))]
			}
			p = p.Add(v)
			want.Add(want, big.NewInt(v))
			if p.Big().Cmp(want) != 0 {
				t.Fatalf("run %d: sum = %s, want %s", run, p, want)
			}
			if p.Sign() != want.Sign() {
				t.Fatalf("Sign(%s) = %d", want, p.Sign())
			}
			v64, ok := p.Int64()
			if ok != want.IsInt64() || (ok && v64 != want.Int64()) {
				t.Fatalf("Int64(%s) = %d, %v", want, v64, ok)
			}
			if f, _ := new(big.Float).SetInt(want).Float64(); p.Float64() != f {
				t.Fatalf("Float64(%s) = %g, want %g", want, p.Float64(), f)
			}
			back, ok := PicosFromBig(want)
			if !ok || back != p {
				t.Fatalf("PicosFromBig(%s) = %+v, %v; want %+v", want, back, ok, p)
			}
			q := PicosOf(rng.Int64())
			if d := p.Sub(q).Big(); d.Cmp(new(big.Int).Sub(want, q.Big())) != 0 {
				t.Fatalf("%s - %s = %s", p, q, d)
			}
			if s := p.Plus(q).Big(); s.Cmp(new(big.Int).Add(want, q.Big())) != 0 {
				t.Fatalf("%s + %s = %s", p, q, s)
			}
		}
	}
}

func TestPicosFromBigRange(t *testing.T) {
	two127 := new(big.Int).Lsh(big.NewInt(1), 127)
	for _, tc := range []struct {
		b  *big.Int
		ok bool
	}{
		{new(big.Int).Sub(two127, big.NewInt(1)), true},
		{two127, false},
		{new(big.Int).Neg(two127), true},
		{new(big.Int).Sub(new(big.Int).Neg(two127), big.NewInt(1)), false},
		{new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(3), 126)), false},
	} {
		p, ok := PicosFromBig(tc.b)
		if ok != tc.ok || (ok && p.Big().Cmp(tc.b) != 0) {
			t.Errorf("PicosFromBig(%s) = %s, %v; want ok=%v", tc.b, p, ok, tc.ok)
		}
	}
}
