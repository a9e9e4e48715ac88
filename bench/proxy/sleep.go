package proxy

import (
	"container/heap"
	"runtime"
	"sync"
	"time"
)

// Accurate sleeping.
//
// Go's timers fire with the resolution of epoll's timeout, a millisecond: a
// wait under a millisecond takes one, which would double a 1 ms round trip,
// and longer waits end up to a millisecond late. Spinning until the
// deadline (with runtime.Gosched) keeps the processors busy and the
// network poller from running, so that arriving bytes are noticed late;
// each writer sleeping in nanosleep would hold a P in a system call, and
// with two writers on two processors nothing else could run.
//
// So one goroutine, the waker, serves every deadline: it waits on a Go
// timer until a little before the earliest one, then in nanosleeps (which
// overshoot by some 0.1 ms) until shortly before it, and spins for the
// rest. It holds a P for up to spinMargin+fineSlice at a time and never
// more than one, so the network poller keeps running on the others.
// Deadlines are met to some 20 µs, plus the wake-up of the writer.

const (
	// coarseMargin is how long before a deadline the waker stops waiting
	// on a Go timer.
	coarseMargin = 1500 * time.Microsecond
	// spinMargin is how long before a deadline it stops sleeping.
	spinMargin = 200 * time.Microsecond
	// fineSlice is the longest nanosleep.
	fineSlice = 500 * time.Microsecond
)

type wake struct {
	at   time.Time
	done chan struct{} // capacity 1
}

type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

var (
	wakeOnce sync.Once
	wakeReqs chan wake
)

// A sleeper sleeps accurately; one per goroutine.
type sleeper struct{ done chan struct{} }

func newSleeper() *sleeper { return &sleeper{done: make(chan struct{}, 1)} }

// until returns at t or a little after.
func (s *sleeper) until(t time.Time) {
	if !time.Now().Before(t) {
		return
	}
	wakeOnce.Do(func() {
		wakeReqs = make(chan wake, 64)
		go waker()
	})
	wakeReqs <- wake{at: t, done: s.done}
	<-s.done
}

func waker() {
	var h wakeHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if len(h) == 0 {
			heap.Push(&h, <-wakeReqs)
		}
		// Take every request already made.
		for more := true; more; {
			select {
			case w := <-wakeReqs:
				heap.Push(&h, w)
			default:
				more = false
			}
		}
		d := time.Until(h[0].at)
		switch {
		case d <= 0:
			heap.Pop(&h).(wake).done <- struct{}{}
			// Let the writer run now: it is queued on this P, which
			// must not go into a nanosleep with it.
			runtime.Gosched()
		case d > coarseMargin:
			timer.Reset(d - coarseMargin)
			select {
			case w := <-wakeReqs:
				heap.Push(&h, w)
				timer.Stop()
			case <-timer.C:
			}
		case d > spinMargin:
			fineSleep(min(d-spinMargin, fineSlice))
		default:
			for time.Now().Before(h[0].at) {
			}
		}
	}
}
