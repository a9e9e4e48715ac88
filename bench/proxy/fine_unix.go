//go:build unix

package proxy

import (
	"syscall"
	"time"
)

// fineSleep sleeps d in the kernel, with its high-resolution timers.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	syscall.Nanosleep(&ts, nil) // EINTR just ends it early
}
