package host

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// ThreadClock returns a clock of this thread's CPU time, after locking the
// calling goroutine to its thread. The machines this runs on are shared and
// busy: CPU time leaves out the time other processes take, and wazero runs
// the module on the calling thread. (CLOCK_THREAD_CPUTIME_ID is 3 on Linux.)
func ThreadClock() (now func() time.Duration, kind string) {
	runtime.LockOSThread()
	return func() time.Duration {
		var ts syscall.Timespec
		syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
		return time.Duration(ts.Nano())
	}, "thread CPU time"
}
