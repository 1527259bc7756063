package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p := FreePorts(t, 2)
		if p < freeLow || p+1 >= min(freeHigh, ephemeralStart()) {
			t.Fatalf("FreePorts = %d, outside [%d, %d)", p, freeLow, min(freeHigh, ephemeralStart()))
		}
		// Both are free: a listener takes each.
		for _, port := range []int{p, p + 1} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Fatalf("port %d from FreePorts is not free: %v", port, err)
			}
			l.Close()
		}
	}
	// A taken port is never returned.
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if portsFree(l.Addr().(*net.TCPAddr).Port, 1) {
		t.Fatal("portsFree reports a held port free")
	}
}
