package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Ports below the kernel's ephemeral range that FreePorts picks from: a
// port the kernel hands out for an outgoing connection, or for a listener
// on port 0, may be taken by any process between a check that it is free
// and the moment the process under test binds it; a port below that range
// is taken only by a listener that asks for it. The range stays clear of
// the ports the project's scripts use (19092, 19094, 29092, 31000 and up).
const (
	freeLow  = 20000
	freeHigh = 29000
)

// FreePorts returns the first of n consecutive ports that are free on
// 127.0.0.1 now, for a process the test starts to listen on.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	first, err := PickFreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// PickFreePorts is FreePorts for programs other than tests: the benchmark
// harness starts processes the same way.
func PickFreePorts(n int) (int, error) {
	hi := min(freeHigh, ephemeralStart())
	if hi-freeLow < 100*n {
		return 0, fmt.Errorf("the kernel's ephemeral ports start at %d, which leaves no room below them from %d; widen net.ipv4.ip_local_port_range's start", hi, freeLow)
	}
	for range 200 {
		first := freeLow + rand.IntN(hi-freeLow-n)
		if portsFree(first, n) {
			return first, nil
		}
	}
	return 0, fmt.Errorf("found no %d free consecutive ports on 127.0.0.1 between %d and %d", n, freeLow, hi)
}

// FreeAddr returns 127.0.0.1:PORT for a free port, as FreePorts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1))
}

func portsFree(first, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for p := first; p < first+n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range, 32768
// where it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return p
}
