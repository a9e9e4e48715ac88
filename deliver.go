package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// A Status classifies a recipient's outcome for a mail queue: delivered,
// to be tried again later, or to be bounced.
type Status int

const (
	// Delivered: the server took responsibility for the message (2yz).
	Delivered Status = iota
	// Deferred: a temporary failure (4yz, a broken or refused connection,
	// a failed DNS lookup that may succeed later, or a message in doubt,
	// ErrNoFinalReply): queue it and try again later, with the server's
	// text in the error.
	Deferred
	// Bounced: a permanent failure (5yz, a null MX, a domain that does not
	// exist): return the message to its sender.
	Bounced
)

// String returns "delivered", "deferred" or "bounced".
func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Deferred:
		return "deferred"
	case Bounced:
		return "bounced"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Status classifies r: Delivered when its Err is nil, Bounced when Err is a
// permanent failure (an *Error with a 5yz code, or a *ResolveError that is
// not Temporary), Deferred for anything else.
func (r *RcptResult) Status() Status {
	var e *Error
	var re *ResolveError
	switch {
	case r.Err == nil:
		return Delivered
	case errors.Is(r.Err, ErrNoFinalReply):
		return Deferred
	case errors.As(r.Err, &e):
		if e.Code/100 == 5 {
			return Bounced
		}
	case errors.As(r.Err, &re):
		if !re.Temporary() {
			return Bounced
		}
	}
	return Deferred
}

// Deliver sends msg to the recipients of env at their domains' mail
// exchangers (RFC 5321 §5.1): it groups the recipients by domain, resolves
// each domain's MX hosts with the Pool's Resolver, in order of preference,
// and sends one transaction per domain through the Pool, the domains side
// by side. Connections are kept per MX address, so domains that share a
// mail exchanger share its connections and its Limiter budget (the
// Limiter's destination is the address, "ip:port").
//
// A domain's transaction goes to its next MX address when the connection
// to one fails before the transaction started, or the server answers 421
// (closing): RFC 5321 §5.1 has the client try the addresses in order. Any
// other reply ends it: a server that refused the message speaks for the
// domain. A message in doubt (ErrNoFinalReply) is not sent again.
//
// The Result lists every recipient of env, in order, with its outcome;
// RcptResult.Status classifies it as Delivered, Deferred or Bounced.
// Result.Reply is the reply of the last transaction that delivered.
// Deliver returns a *RecipientsError when some recipients were not
// delivered (nil when all were), or an error before anything is sent: for
// an Envelope without recipients, or with a TransID and more than one
// domain (a TRANSID names one transaction), or when msg cannot be read;
// msg is read into memory once, to be sent to each domain.
func (p *Pool) Deliver(ctx context.Context, env *Envelope, msg io.Reader) (*Result, error) {
	groups, order, err := byDomain(env)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(msg)
	if err != nil {
		return nil, fmt.Errorf("smtp: reading the message: %w", err)
	}
	results := make(map[string]*domainOutcome, len(order))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, d := range order {
		wg.Go(func() {
			out := p.deliverDomain(ctx, d, groups[d], env, body)
			mu.Lock()
			results[d] = out
			mu.Unlock()
		})
	}
	wg.Wait()
	return mergeDomains(env, results)
}

// byDomain groups the recipients of env by domain (lower-cased), keeping
// the order domains first appear in.
func byDomain(env *Envelope) (map[string][]Recipient, []string, error) {
	if len(env.To) == 0 {
		return nil, nil, errors.New("smtp: Deliver needs at least one recipient")
	}
	groups := make(map[string][]Recipient)
	var order []string
	for _, r := range env.To {
		at := strings.LastIndexByte(r.Addr, '@')
		if at < 0 || at == len(r.Addr)-1 {
			return nil, nil, fmt.Errorf("%w: %q has no domain to deliver to", ErrInvalidPath, r.Addr)
		}
		d := domainOf(r.Addr)
		if _, ok := groups[d]; !ok {
			order = append(order, d)
		}
		groups[d] = append(groups[d], r)
	}
	if len(order) > 1 && env.TransID != "" {
		return nil, nil, errors.New("smtp: an Envelope with a TransID names one transaction: Deliver it to one domain")
	}
	return groups, order, nil
}

// domainOutcome is how one domain's transaction ended.
type domainOutcome struct {
	res *Result
	err error
}

// deliverDomain sends to the recipients of one domain, trying its MX
// addresses in order as long as the failure is the connection's or a 421.
func (p *Pool) deliverDomain(ctx context.Context, domain string, to []Recipient, env *Envelope, body []byte) *domainOutcome {
	targets, err := secureTargets(ctx, p.Resolver, p.MXPolicy, domain)
	if err != nil {
		return &domainOutcome{err: err}
	}
	sub := *env
	sub.To = to
	out := &domainOutcome{}
	for _, t := range targets {
		out.res, out.err = p.send(ctx, t, &sub, bytes.NewReader(body))
		if !tryNextMX(out.err) || ctx.Err() != nil {
			break
		}
	}
	return out
}

// tryNextMX reports whether a domain's transaction should go to its next
// MX address after err: a failure of the connection before anything was
// taken, or a 421.
func tryNextMX(err error) bool {
	var e *Error
	var re *RecipientsError
	switch {
	case err == nil, errors.Is(err, ErrNoFinalReply), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &re):
		return len(re.Refused) > 0 && re.Refused[0].Reply != nil && re.Refused[0].Reply.Code == 421 && re.Accepted == 0
	case errors.As(err, &e):
		return e.Code == 421
	}
	return true // dial, I/O or protocol failure
}

// mergeDomains puts the domains' outcomes back in the order of env.To.
func mergeDomains(env *Envelope, results map[string]*domainOutcome) (*Result, error) {
	res := &Result{Recipients: make([]RcptResult, len(env.To))}
	for _, out := range results {
		if out.res != nil {
			res.Transmitted += out.res.Transmitted
		}
	}
	next := make(map[string]int) // the next recipient of each domain's Result
	var refused []RcptResult
	for i, r := range env.To {
		d := domainOf(r.Addr)
		out := results[d]
		rr := RcptResult{Addr: r.Addr, Err: out.err}
		var re *RecipientsError
		if out.res != nil && next[d] < len(out.res.Recipients) {
			rr = out.res.Recipients[next[d]]
			if out.err != nil && !errors.As(out.err, &re) {
				rr.Err = out.err // the transaction failed as a whole
			}
		}
		next[d]++
		if rr.Err == nil && res.Reply == nil && out.res != nil {
			res.Reply, res.Octets = out.res.Reply, out.res.Octets
		}
		res.Recipients[i] = rr
		if rr.Err != nil {
			refused = append(refused, rr)
		}
	}
	if len(refused) > 0 {
		return res, &RecipientsError{Refused: refused, Accepted: len(env.To) - len(refused)}
	}
	return res, nil
}

// domainOf returns the lower-cased domain of addr, after its last "@".
func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}
