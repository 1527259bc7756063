package clickhouse

import (
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/schemas"
)

// Money is Decimal(38, 12) USD in every table: exactly the pico-USD of the
// Go side, one event's as int64 and sums as schemas.Picos128, both
// converted without rounding.

// maxDecimalPicos is the largest magnitude Decimal(38, 12) holds, in
// pico-USD: 10^38 - 1, about 10^26 USD.
var maxDecimalPicos = new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil), big.NewInt(1))

// maxDecimal128 is maxDecimalPicos as two words.
var maxDecimal128 = schemas.Picos128{Hi: 0x4B3B4CA85A86C47A, Lo: 0x098A223FFFFFFFFF}

// fitsDecimal38 reports whether p is within what a Decimal(38, 12) column
// holds, the check of sumToUSD without a big.Int.
func fitsDecimal38(p schemas.Picos128) bool {
	if p.Sign() < 0 {
		p = schemas.Picos128{}.Sub(p) // the most negative value stays negative: too large
	}
	return p.Hi >= 0 && (p.Hi < maxDecimal128.Hi || p.Hi == maxDecimal128.Hi && p.Lo <= maxDecimal128.Lo)
}

// picosToUSD converts one event's pico-USD to an exact decimal.
func picosToUSD(picos int64) decimal.Decimal { return decimal.New(picos, -12) }

// sumToUSD converts a pico-USD sum to an exact decimal. A sum beyond
// Decimal(38, 12) (10^19 events at the largest cost) is an error rather
// than a wrapped value.
func sumToUSD(p schemas.Picos128) (decimal.Decimal, error) {
	b := p.Big()
	if new(big.Int).Abs(b).Cmp(maxDecimalPicos) > 0 {
		return decimal.Decimal{}, fmt.Errorf("%s pico-USD is beyond what a Decimal(38, 12) column holds", b)
	}
	return decimal.NewFromBigInt(b, -12), nil
}

// usdToSum reads a Decimal(38, 12) amount back as pico-USD.
func usdToSum(d decimal.Decimal) (schemas.Picos128, error) {
	picos := d.Shift(12)
	if !picos.IsInteger() {
		return schemas.Picos128{}, fmt.Errorf("%s USD is not a whole number of pico-USD", d)
	}
	p, ok := schemas.PicosFromBig(picos.BigInt())
	if !ok {
		return schemas.Picos128{}, fmt.Errorf("%s USD is beyond 128-bit pico-USD", d)
	}
	return p, nil
}

// usdToPicos reads one event's Decimal(38, 12) cost back as int64 pico-USD.
func usdToPicos(d decimal.Decimal) (int64, error) {
	p, err := usdToSum(d)
	if err != nil {
		return 0, err
	}
	v, ok := p.Int64()
	if !ok {
		return 0, fmt.Errorf("%s USD is beyond one event's int64 pico-USD", d)
	}
	return v, nil
}
