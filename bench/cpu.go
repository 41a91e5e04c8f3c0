package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time this process and the whole machine (every
// process: the database server, the sink, anything else running) had used
// at one moment.
type cpuSample struct {
	self    time.Duration
	machine time.Duration
}

func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// /proc/stat's first line: cpu user nice system idle iowait irq
	// softirq steal …, in clock ticks (USER_HZ, 100 on Linux).
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	var busy int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal and guest
			continue
		}
		v, _ := strconv.ParseInt(f, 10, 64)
		busy += v
	}
	s.machine = time.Duration(busy) * 10 * time.Millisecond
	return s
}

// perMsg is the CPU time per message between two samples, in µs: this
// process's and everything else's on the machine.
func perMsg(a, b cpuSample, n int) (self, others float64) {
	if n == 0 {
		return 0, 0
	}
	s := b.self - a.self
	o := b.machine - a.machine - s
	if o < 0 {
		o = 0
	}
	return float64(s.Microseconds()) / float64(n), float64(o.Microseconds()) / float64(n)
}
