package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// stepCPU is the CPU time a step used, over the whole step (set-up
// included): busy CPU of the whole machine (/proc/stat: everything but idle
// and iowait), and of the Kafka broker and the ClickHouse server within it.
// On a shared 2-core machine these drift much less than events/s, and
// they show what each path costs the machine per event, servers included.
type stepCPU struct {
	Seconds           float64 `json:"seconds"`
	MachineCPUSeconds float64 `json:"machine_cpu_seconds"`
	BrokerCPUSeconds  float64 `json:"kafka_broker_cpu_seconds"`
	ClickHouseSeconds float64 `json:"clickhouse_server_cpu_seconds"`
	// Events is how many events the step processed; MachineCPUUsPerEvent
	// is machine CPU µs per event, 0 when Events is.
	Events               int     `json:"events,omitempty"`
	MachineCPUUsPerEvent float64 `json:"machine_cpu_us_per_event,omitempty"`
}

type cpuSnap struct {
	at                          time.Time
	machine, broker, clickhouse float64
}

func (h *harness) cpuSnap() cpuSnap {
	s := cpuSnap{at: time.Now(), machine: machineBusy()}
	if pid := readPID(filepath.Join(h.broker.dir, "kafka.pid")); pid > 0 {
		s.broker, _ = pidCPU(pid)
	}
	if pid := clickhousePID(); pid > 0 {
		s.clickhouse, _ = pidCPU(pid)
	}
	return s
}

func (s cpuSnap) since(from cpuSnap, events int) stepCPU {
	c := stepCPU{
		Seconds:           s.at.Sub(from.at).Seconds(),
		MachineCPUSeconds: s.machine - from.machine,
		BrokerCPUSeconds:  s.broker - from.broker,
		ClickHouseSeconds: s.clickhouse - from.clickhouse,
		Events:            events,
	}
	if events > 0 {
		c.MachineCPUUsPerEvent = c.MachineCPUSeconds / float64(events) * 1e6
	}
	return c
}

// machineBusy is the CPU seconds all cores spent on anything but idling
// and waiting for I/O since boot.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		// user nice system idle iowait irq softirq steal (guest is in user)
		if i != 3 && i != 4 && i < 8 {
			busy += v
		}
	}
	return busy / clockTicks
}

// pidCPU is a process's user and system CPU seconds so far.
func pidCPU(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat has %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / clockTicks, nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// clickhousePID finds the local ClickHouse server: the pid file that
// deploy/scripts/clickhouse.sh writes, else the first process named like
// one; 0 when ClickHouse is not on this machine.
func clickhousePID() int {
	if pid := readPID(filepath.Join(envOr("AIVISDEV_CH_DIR", ".aivis/clickhouse"), "clickhouse.pid")); pid > 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return pid
		}
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if name := strings.TrimSpace(string(comm)); name == "clickhouse-serv" || name == "clickhouse-server" {
			return pid
		}
	}
	return 0
}
