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
	// BrokerJITSeconds and BrokerGCSeconds are the parts of
	// BrokerCPUSeconds spent by the JVM's compiler threads and by its
	// garbage collector (threads alive at both ends of the step: a compiler
	// thread that ended within it counts in the rest). The compiler's share
	// is the warm-up of code paths that the step used first; a broker that
	// has run for a while no longer pays it.
	BrokerJITSeconds  float64 `json:"kafka_broker_jit_cpu_seconds"`
	BrokerGCSeconds   float64 `json:"kafka_broker_gc_cpu_seconds"`
	ClickHouseSeconds float64 `json:"clickhouse_server_cpu_seconds"`
	// Events is how many events the step processed; MachineCPUUsPerEvent
	// is machine CPU µs per event, 0 when Events is.
	Events               int     `json:"events,omitempty"`
	MachineCPUUsPerEvent float64 `json:"machine_cpu_us_per_event,omitempty"`
}

type cpuSnap struct {
	at                          time.Time
	machine, broker, clickhouse float64
	// brokerThreads is the CPU seconds of each broker thread that is a
	// compiler or GC thread, by thread id.
	brokerThreads map[string]threadCPU
}

type threadCPU struct {
	jit     bool // a compiler thread, else a GC thread
	seconds float64
}

func (h *harness) cpuSnap() cpuSnap {
	s := cpuSnap{at: time.Now(), machine: machineBusy()}
	if pid := readPID(filepath.Join(h.broker.dir, "kafka.pid")); pid > 0 {
		s.broker, _ = pidCPU(pid)
		s.brokerThreads = jvmThreads(pid)
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
	for tid, t := range s.brokerThreads {
		before, ok := from.brokerThreads[tid]
		if !ok {
			continue
		}
		if t.jit {
			c.BrokerJITSeconds += t.seconds - before.seconds
		} else {
			c.BrokerGCSeconds += t.seconds - before.seconds
		}
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

// jvmThreads is the CPU so far of a JVM's compiler threads ("C1
// CompilerThre", "C2 CompilerThre") and garbage collector threads ("GC
// Thread#0", "G1 Conc#0", "G1 Refine#0", "G1 Main Marker", "G1 Service"),
// by thread id; nil when /proc cannot tell.
func jvmThreads(pid int) map[string]threadCPU {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]threadCPU{}
	for _, t := range tasks {
		comm, err := os.ReadFile(filepath.Join(dir, t.Name(), "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		jit := strings.Contains(name, "CompilerThre")
		if !jit && !strings.HasPrefix(name, "GC Thread") && !strings.HasPrefix(name, "G1 ") {
			continue
		}
		secs, err := statCPU(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue
		}
		out[t.Name()] = threadCPU{jit: jit, seconds: secs}
	}
	return out
}

// pidCPU is a process's user and system CPU seconds so far.
func pidCPU(pid int) (float64, error) {
	return statCPU(fmt.Sprintf("/proc/%d/stat", pid))
}

// statCPU is the user and system CPU seconds in a /proc stat file, of a
// process or of one of its threads.
func statCPU(path string) (float64, error) {
	stat, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s has %d fields", path, len(fields))
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
