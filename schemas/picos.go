package schemas

import (
	"math"
	"math/big"
	"math/bits"
)

// Picos128 is a signed 128-bit amount of pico-USD (two's complement, Hi
// holding the sign): the type of cost sums. One event's cost is an int64,
// at most about 9.2 million USD; a sum of 2^64 such costs fits, so adding
// event costs one by one never overflows. Up to 10^38-1 pico-USD (10^26
// USD) it converts exactly to ClickHouse's Decimal(38, 12).
type Picos128 struct {
	Hi int64
	Lo uint64
}

// PicosOf returns v as a Picos128.
func PicosOf(v int64) Picos128 { return Picos128{Hi: v >> 63, Lo: uint64(v)} }

// Add returns p + v.
func (p Picos128) Add(v int64) Picos128 {
	lo, carry := bits.Add64(p.Lo, uint64(v), 0)
	return Picos128{Hi: p.Hi + v>>63 + int64(carry), Lo: lo}
}

// Plus returns p + q. It wraps only past ±2^127 pico-USD, which no sum of
// event costs reaches.
func (p Picos128) Plus(q Picos128) Picos128 {
	lo, carry := bits.Add64(p.Lo, q.Lo, 0)
	return Picos128{Hi: p.Hi + q.Hi + int64(carry), Lo: lo}
}

// Sub returns p - q. It wraps only past ±2^127 pico-USD, which no sum of
// event costs reaches.
func (p Picos128) Sub(q Picos128) Picos128 {
	lo, borrow := bits.Sub64(p.Lo, q.Lo, 0)
	return Picos128{Hi: p.Hi - q.Hi - int64(borrow), Lo: lo}
}

// Sign returns -1, 0 or +1.
func (p Picos128) Sign() int {
	switch {
	case p.Hi < 0:
		return -1
	case p.Hi == 0 && p.Lo == 0:
		return 0
	}
	return 1
}

// Int64 returns p as an int64 and whether it fits.
func (p Picos128) Int64() (int64, bool) {
	v := int64(p.Lo)
	return v, p.Hi == v>>63
}

// Float64 returns the nearest float64, for statistics; never for money.
func (p Picos128) Float64() float64 {
	if v, ok := p.Int64(); ok {
		return float64(v)
	}
	f, _ := new(big.Float).SetInt(p.Big()).Float64()
	return f
}

// Big returns p as a new big.Int.
func (p Picos128) Big() *big.Int {
	neg := p.Hi < 0
	if neg {
		p = PicosOf(0).Sub(p) // -2^127 stays itself; read as unsigned it is right
	}
	b := new(big.Int).SetUint64(uint64(p.Hi))
	b.Lsh(b, 64)
	b.Or(b, new(big.Int).SetUint64(p.Lo))
	if neg {
		b.Neg(b)
	}
	return b
}

// PicosFromBig returns b as a Picos128 and whether it fits in 128 bits.
func PicosFromBig(b *big.Int) (Picos128, bool) {
	if b.BitLen() > 127 {
		if b.Sign() < 0 && b.BitLen() == 128 && b.TrailingZeroBits() == 127 {
			return Picos128{Hi: math.MinInt64}, true
		}
		return Picos128{}, false
	}
	abs := new(big.Int).Abs(b)
	lo := new(big.Int).And(abs, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
	hi := new(big.Int).Rsh(abs, 64).Uint64()
	p := Picos128{Hi: int64(hi), Lo: lo}
	if b.Sign() < 0 {
		p = PicosOf(0).Sub(p)
	}
	return p, true
}

// String returns p as a decimal number of pico-USD.
func (p Picos128) String() string { return p.Big().String() }
