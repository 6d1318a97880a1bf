//go:build !linux

package main

import "time"

// threadClock falls back to wall time where thread CPU time is not read.
func threadClock() (now func() time.Duration, kind string) {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }, "wall time"
}
