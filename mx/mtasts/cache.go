package mtasts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A Cached policy: what the Fetcher keeps between Gets.
type Cached struct {
	Policy  Policy
	ID      string    // the id of the TXT record it was fetched for
	Fetched time.Time // when it was fetched
}

// Expires returns when the cached policy may no longer be used.
func (c *Cached) Expires() time.Time { return c.Fetched.Add(c.Policy.MaxAge) }

// A Cache keeps policies by domain (lower-case). Get returns nil and no
// error for a domain it holds nothing for. Implementations must be safe for
// concurrent use.
type Cache interface {
	Get(ctx context.Context, domain string) (*Cached, error)
	Put(ctx context.Context, domain string, c *Cached) error
}

// A MemoryCache is a Cache in memory. The zero value is ready to use.
type MemoryCache struct {
	mu sync.Mutex
	m  map[string]Cached
}

// Get returns a copy of the policy cached for domain, or nil.
func (m *MemoryCache) Get(_ context.Context, domain string) (*Cached, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.m[strings.ToLower(domain)]
	if !ok {
		return nil, nil
	}
	c.Policy.MX = append([]string(nil), c.Policy.MX...)
	return &c, nil
}

// Put caches a copy of c for domain.
func (m *MemoryCache) Put(_ context.Context, domain string, c *Cached) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]Cached)
	}
	cc := *c
	cc.Policy.MX = append([]string(nil), c.Policy.MX...)
	m.m[strings.ToLower(domain)] = cc
	return nil
}

// A DirCache is a Cache that keeps each domain's policy in a JSON file of
// its own in Dir, so that policies outlive the process (RFC 8461 §5.1: a
// restart must not open a window for a downgrade). A write replaces the
// file atomically.
type DirCache struct {
	Dir string
}

func (d *DirCache) path(domain string) (string, error) {
	domain = strings.ToLower(domain)
	if domain == "" || strings.ContainsAny(domain, "/\\") || strings.HasPrefix(domain, ".") {
		return "", fmt.Errorf("mtasts: bad domain %q", domain)
	}
	return filepath.Join(d.Dir, domain+".json"), nil
}

// Get reads the policy cached for domain, or returns nil when there is
// none.
func (d *DirCache) Get(_ context.Context, domain string) (*Cached, error) {
	p, err := d.path(domain)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Cached
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("mtasts: cache file %s: %w", p, err)
	}
	return &c, nil
}

// Put writes c as domain's file, through a temporary file renamed over it.
func (d *DirCache) Put(_ context.Context, domain string, c *Cached) error {
	p, err := d.path(domain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d.Dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), p)
}
