package clickhouse

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuMeter reports, per row, the CPU time this process and a ClickHouse
// server on the same machine spent: both share the cores, so the cost of
// an insert is their sum. The server is found by its process name; on
// another host only the client's share is reported.
type cpuMeter struct {
	serverPID        int
	client0, server0 time.Duration
}

func startCPU() *cpuMeter {
	m := &cpuMeter{serverPID: clickhouseServerPID()}
	m.client0, m.server0 = processCPU(), pidCPU(m.serverPID)
	return m
}

func (m *cpuMeter) report(b *testing.B, rows int) {
	b.ReportMetric(float64((processCPU()-m.client0).Nanoseconds())/float64(rows), "client-cpu-ns/row")
	if m.serverPID > 0 {
		b.ReportMetric(float64((pidCPU(m.serverPID)-m.server0).Nanoseconds())/float64(rows), "server-cpu-ns/row")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func clickhouseServerPID() int {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err == nil && strings.HasPrefix(string(b), "clickhouse-serv") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			return pid
		}
	}
	return 0
}

// pidCPU reads utime+stime of a process from /proc (clock ticks of 10ms).
func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
