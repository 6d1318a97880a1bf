//go:build !linux

package host

import "time"

// ThreadClock falls back to wall time where thread CPU time is not read.
func ThreadClock() (now func() time.Duration, kind string) {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }, "wall time"
}
