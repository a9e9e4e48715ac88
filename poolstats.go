package smtp

import (
	"errors"
	"slices"
	"strings"
)

// PoolStats counts what a Pool did for one destination ("host:port"),
// since the Pool's first Send, for export to a metrics system.
type PoolStats struct {
	// Dest is the destination.
	Dest string
	// Open is the number of connections open or being dialed now.
	Open int
	// Dials counts the connections opened, or tried.
	Dials int64
	// Delivered, Deferred and Bounced count the Sends by their outcome:
	// delivered to at least one recipient, or failed for every recipient
	// temporarily or permanently (RcptResult.Status).
	Delivered, Deferred, Bounced int64
	// Octets counts the message octets sent (Result.Transmitted).
	Octets int64
}

// Stats returns the counters of every destination the Pool has sent to,
// ordered by destination.
func (p *Pool) Stats() []PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PoolStats, 0, len(p.stats))
	for dest, s := range p.stats {
		st := *s
		st.Dest = dest
		for _, h := range p.hosts {
			if h.addr == dest {
				st.Open += h.conns
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PoolStats) int { return strings.Compare(a.Dest, b.Dest) })
	return out
}

// stat returns the counters of dest; p.mu is held.
func (p *Pool) stat(dest string) *PoolStats {
	s := p.stats[dest]
	if s == nil {
		s = &PoolStats{}
		if p.stats == nil {
			p.stats = make(map[string]*PoolStats)
		}
		p.stats[dest] = s
	}
	return s
}

// count records the outcome of a Send to dest that a connection took, or
// that failed for want of one (a Send withdrawn from the queue is not
// counted).
func (p *Pool) count(dest string, q *queuedSend) {
	res, err := q.res, q.err
	if errors.Is(err, ErrClosed) && res == nil {
		return // the Pool was closed under it
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stat(dest)
	if res != nil {
		s.Octets += res.Transmitted
	}
	switch {
	case err == nil, someAccepted(err):
		s.Delivered++
	case (&RcptResult{Err: err}).Status() == Bounced:
		s.Bounced++
	default:
		s.Deferred++
	}
}

// someAccepted reports whether err is a RecipientsError after which the
// message went to some recipients.
func someAccepted(err error) bool {
	var re *RecipientsError
	return errors.As(err, &re) && re.Accepted > 0
}
