package mtasts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// MaxBody is the largest policy body a Fetcher reads (RFC 8461 §3.3
// suggests 64 KiB).
const MaxBody = 64 << 10

// FetchTimeout bounds a policy's fetch when the context has no sooner
// deadline (RFC 8461 §3.3 suggests 60 seconds).
const FetchTimeout = time.Minute

// A TXTResolver looks up TXT records; *net.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// A Fetcher finds, fetches and caches the MTA-STS policies of domains. The
// zero value uses net.DefaultResolver, an HTTP client of its own and no
// cache. A Fetcher is safe for concurrent use; its fields must not change
// after first use.
type Fetcher struct {
	// Resolver looks up the "_mta-sts" TXT records; nil means
	// net.DefaultResolver.
	Resolver TXTResolver
	// HTTP fetches the policies; nil means http.DefaultTransport's rules
	// in a client of its own. Whatever it is, redirects are refused, no
	// cookie jar is used and the fetch is bounded by FetchTimeout.
	HTTP *http.Client
	// Cache keeps policies between Gets (RFC 8461 §5.1); nil fetches each
	// time.
	Cache Cache
	// now is the clock, for tests.
	now func() time.Time
}

// Errors for what went wrong, matched by the errors of Get and Fetch, in
// the terms of TLS reporting (RFC 8460 §4.3.2: sts-policy-fetch-error,
// sts-policy-invalid, sts-webpki-invalid).
var (
	// ErrFetch: the policy could not be fetched (connection, HTTP status,
	// redirect, media type, size).
	ErrFetch = errors.New("mtasts: policy fetch failed")
	// ErrWebPKI: the policy host's certificate is not valid for
	// "mta-sts.<domain>".
	ErrWebPKI = errors.New("mtasts: policy host certificate invalid")
)

// Fetch fetches and parses the policy of domain from
// https://mta-sts.<domain>/.well-known/mta-sts.txt with the rules of RFC
// 8461 §3.3: a certificate valid for that name, no redirect, status 200,
// media type text/plain, at most MaxBody octets, within FetchTimeout. Its
// error matches ErrWebPKI, ErrFetch or ErrSyntax.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://mta-sts."+domain+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	c := http.Client{}
	if f.HTTP != nil {
		c = *f.HTTP
	}
	c.Jar = nil
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		if isCertError(err) { // errors.As looks through url.Error and the rest
			return nil, fmt.Errorf("%w: %w", ErrWebPKI, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP status %s (redirects are not followed)", ErrFetch, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("%w: media type %q, not text/plain", ErrFetch, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: policy over %d octets", ErrFetch, MaxBody)
	}
	return Parse(body)
}

// Get returns the policy that applies to domain now, following RFC 8461
// §3 and §5.1:
//   - it looks up the TXT record; a cached policy that has not expired is
//     used when the record is missing, unchanged (same id) or the lookup
//     fails;
//   - otherwise it fetches the policy and caches it; when the fetch fails,
//     an unexpired cached policy is used all the same.
//
// A nil Policy means the domain has no policy to apply: deliver as without
// MTA-STS. The error then says why, for reporting (RFC 8460): it matches
// ErrNoRecord when the domain publishes none, ErrFetch, ErrWebPKI or
// ErrSyntax when its policy could not be had. A policy in mode none is
// returned as it is.
func (f *Fetcher) Get(ctx context.Context, domain string) (*Policy, error) {
	now := f.clock()
	var cached *Cached
	if f.Cache != nil {
		c, err := f.Cache.Get(ctx, domain)
		if err == nil && c != nil && now.Before(c.Expires()) {
			cached = c
		}
	}
	var r TXTResolver = net.DefaultResolver
	if f.Resolver != nil {
		r = f.Resolver
	}
	txts, err := r.LookupTXT(ctx, "_mta-sts."+domain)
	id, idErr := "", err
	if err == nil {
		id, idErr = ParseRecords(txts)
	} else {
		idErr = fmt.Errorf("%w: %w", ErrNoRecord, err)
	}
	switch {
	case cached != nil && (idErr != nil || id == cached.ID):
		return &cached.Policy, nil
	case idErr != nil:
		return nil, idErr
	}
	p, err := f.Fetch(ctx, domain)
	if err != nil {
		if cached != nil {
			return &cached.Policy, nil
		}
		return nil, err
	}
	if f.Cache != nil {
		f.Cache.Put(ctx, domain, &Cached{Policy: *p, ID: id, Fetched: now})
	}
	return p, nil
}

func (f *Fetcher) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}
