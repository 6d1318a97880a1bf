package main

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used. Timing a
// single-threaded loop with it (after runtime.LockOSThread) leaves out the time
// other processes took on a shared machine.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadClockName says what threadCPU measures, for reports.
const threadClockName = "thread CPU time"
