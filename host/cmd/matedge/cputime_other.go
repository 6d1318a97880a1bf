//go:build !linux

package main

import "time"

var clockStart = time.Now()

// threadCPU falls back to wall-clock time where thread CPU time is not read.
func threadCPU() time.Duration { return time.Since(clockStart) }

const threadClockName = "wall-clock time"
