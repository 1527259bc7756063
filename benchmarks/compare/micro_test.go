package main

import (
	"slices"
	"testing"
)

func TestParseBenchKeepsEveryRun(t *testing.T) {
	out := `goos: linux
BenchmarkAddBatch   	     900	   2400000 ns/op	       241.4 cpu-ns/event	       240.7 ns/event	   47471 B/op	     163 allocs/op
BenchmarkAddBatch   	     910	   2500000 ns/op	       251.0 cpu-ns/event	       250.2 ns/event	   47000 B/op	     163 allocs/op
BenchmarkDecodeEnrich/decoder-2         	 1000000	      2239 ns/op	 253.21 MB/s	       1 B/op	       0 allocs/op
PASS`
	m := parseBench(out)
	if got := m["BenchmarkAddBatch ns/event"]; !slices.Equal(got, []float64{240.7, 250.2}) {
		t.Errorf("ns/event runs = %v", got)
	}
	if got := m["BenchmarkDecodeEnrich/decoder ns/op"]; !slices.Equal(got, []float64{2239}) {
		t.Errorf("decoder ns/op runs = %v", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{210, 180, 900, 190, 200}, 200},
	} {
		in := slices.Clone(tc.in)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median reordered its input: %v", tc.in)
		}
	}
}
