//go:build !unix

package proxy

import "time"

// fineSleep sleeps about d.
func fineSleep(d time.Duration) { time.Sleep(d) }
