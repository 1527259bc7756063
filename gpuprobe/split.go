package gpuprobe

import (
	"math/big"
	"sort"
)

// splitExact divides total (milliseconds, millijoules) between parts in
// proportion to weights, in integers that add up to total exactly: each
// part gets the floor of its share and the units left over go one each to
// the largest remainders (ties to the lower index, so the split is
// deterministic). All-zero weights split evenly. Weights must not be
// negative; the products are computed in big integers so no weight or
// total can overflow.
func splitExact(total int64, weights []uint64) []int64 {
	out := make([]int64, len(weights))
	if len(weights) == 0 || total <= 0 {
		return out
	}
	bigSum := new(big.Int)
	for _, w := range weights {
		bigSum.Add(bigSum, new(big.Int).SetUint64(w))
	}
	if bigSum.Sign() == 0 {
		weights = make([]uint64, len(weights))
		for i := range weights {
			weights[i] = 1
		}
		bigSum.SetInt64(int64(len(weights)))
	}
	rems := make([]*big.Int, len(weights))
	bigTotal := big.NewInt(total)
	var given int64
	for i, w := range weights {
		q, r := new(big.Int).QuoRem(new(big.Int).Mul(bigTotal, new(big.Int).SetUint64(w)), bigSum, new(big.Int))
		out[i] = q.Int64()
		rems[i] = r
		given += out[i]
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rems[order[a]].Cmp(rems[order[b]]) > 0 })
	for k := 0; given < total; k++ {
		out[order[k%len(order)]]++
		given++
	}
	return out
}
