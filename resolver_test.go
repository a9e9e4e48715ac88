package smtp

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var _ DNS = (*net.Resolver)(nil)

// resFakeDNS answers from maps keyed by the name asked and records the
// questions, as "MX name" and "IP name". A name it does not know is not
// found, as *net.Resolver reports it.
type resFakeDNS struct {
	mx map[string]resMX
	ip map[string]resIP

	mu    sync.Mutex
	asked []string
}

type resMX struct {
	records []*net.MX
	err     error
}

type resIP struct {
	addrs []net.IPAddr
	err   error
}

func (d *resFakeDNS) ask(q string) {
	d.mu.Lock()
	d.asked = append(d.asked, q)
	d.mu.Unlock()
}

func (d *resFakeDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	d.ask("MX " + name)
	a, ok := d.mx[name]
	if !ok {
		return nil, resNotFound(name)
	}
	return a.records, a.err
}

func (d *resFakeDNS) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	d.ask("IP " + host)
	a, ok := d.ip[host]
	if !ok {
		return nil, resNotFound(host)
	}
	return a.addrs, a.err
}

func resNotFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func resTempErr(name string) error {
	return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
}

func resMXs(hostPrefs ...any) []*net.MX {
	var mxs []*net.MX
	for i := 0; i < len(hostPrefs); i += 2 {
		mxs = append(mxs, &net.MX{Host: hostPrefs[i].(string), Pref: uint16(hostPrefs[i+1].(int))})
	}
	return mxs
}

// resIPs returns addresses as *net.Resolver does: IPv4 in 16-byte form.
func resIPs(addrs ...string) []net.IPAddr {
	var out []net.IPAddr
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			panic("bad IP " + a)
		}
		out = append(out, net.IPAddr{IP: ip})
	}
	return out
}

// resFmt formats targets as "pref host addr" strings.
func resFmt(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%d %s %s", t.Pref, t.Host, t.Addr))
	}
	return out
}

// resNoShuffle keeps equal preferences in the order the DNS gave them.
func resNoShuffle(n int) int { return n - 1 }

func TestResolve(t *testing.T) {
	many := func(prefix string, n int) []net.IPAddr {
		var out []net.IPAddr
		for i := 1; i <= n; i++ {
			out = append(out, resIPs(fmt.Sprintf("%s%d", prefix, i))...)
		}
		return out
	}
	twelveMX := func() (resMX, map[string]resIP) {
		var mx resMX
		ip := map[string]resIP{}
		for i := 1; i <= 12; i++ {
			h := fmt.Sprintf("mx%d.example.com.", i)
			mx.records = append(mx.records, &net.MX{Host: h, Pref: uint16(i)})
			ip[h] = resIP{addrs: resIPs(fmt.Sprintf("192.0.2.%d", i))}
		}
		return mx, ip
	}
	twelve, twelveIP := twelveMX()

	tests := []struct {
		name     string
		domain   string
		mx       map[string]resMX
		ip       map[string]resIP
		r        Resolver
		want     []string
		wantErr  error // checked with errors.Is
		wantTemp bool
		asked    []string // nil: not checked
	}{
		{
			name:   "preference order",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx3.example.com.", 30, "mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: resIPs("192.0.2.1")},
				"mx2.example.com.": {addrs: resIPs("192.0.2.2")},
				"mx3.example.com.": {addrs: resIPs("192.0.2.3")},
			},
			want: []string{
				"10 mx1.example.com 192.0.2.1:25",
				"20 mx2.example.com 192.0.2.2:25",
				"30 mx3.example.com 192.0.2.3:25",
			},
			asked: []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com.", "IP mx3.example.com."},
		},
		{
			name:   "both families in the resolver's order",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: resIPs("2001:db8::1", "192.0.2.1", "2001:db8::2")},
				"mx2.example.com.": {addrs: resIPs("192.0.2.2", "2001:db8::3")},
			},
			want: []string{
				"10 mx1.example.com [2001:db8::1]:25",
				"10 mx1.example.com 192.0.2.1:25",
				"10 mx1.example.com [2001:db8::2]:25",
				"20 mx2.example.com 192.0.2.2:25",
				"20 mx2.example.com [2001:db8::3]:25",
			},
		},
		{
			name:   "implicit MX: empty MX answer",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {}},
			ip:     map[string]resIP{"example.com.": {addrs: resIPs("192.0.2.9", "2001:db8::9")}},
			want:   []string{"0 example.com 192.0.2.9:25", "0 example.com [2001:db8::9]:25"},
			asked:  []string{"MX example.com.", "IP example.com."},
		},
		{
			name:   "implicit MX: MX not found, as net.Resolver reports no MX data",
			domain: "example.com",
			ip:     map[string]resIP{"example.com.": {addrs: resIPs("192.0.2.9")}},
			want:   []string{"0 example.com 192.0.2.9:25"},
			asked:  []string{"MX example.com.", "IP example.com."},
		},
		{
			name:    "NXDOMAIN",
			domain:  "nx.example",
			wantErr: ErrNoAddress,
			asked:   []string{"MX nx.example.", "IP nx.example."},
		},
		{
			name:     "implicit MX with a temporary address failure",
			domain:   "example.com",
			mx:       map[string]resMX{"example.com.": {}},
			ip:       map[string]resIP{"example.com.": {err: resTempErr("example.com.")}},
			wantErr:  ErrNoAddress,
			wantTemp: true,
		},
		{
			name:    "implicit MX without addresses",
			domain:  "example.com",
			mx:      map[string]resMX{"example.com.": {}},
			ip:      map[string]resIP{"example.com.": {}},
			wantErr: ErrNoAddress,
		},
		{
			name:    "null MX",
			domain:  "example.com",
			mx:      map[string]resMX{"example.com.": {records: resMXs(".", 0)}},
			ip:      map[string]resIP{"example.com.": {addrs: resIPs("192.0.2.9")}},
			wantErr: ErrNullMX,
			asked:   []string{"MX example.com."},
		},
		{
			name:    "null MX with another preference",
			domain:  "example.com",
			mx:      map[string]resMX{"example.com.": {records: resMXs(".", 10)}},
			wantErr: ErrNullMX,
			asked:   []string{"MX example.com."},
		},
		{
			name:    "null MX twice",
			domain:  "example.com",
			mx:      map[string]resMX{"example.com.": {records: resMXs(".", 0, ".", 10)}},
			wantErr: ErrNullMX,
		},
		{
			name:   "null MX among other MX records is ignored",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs(".", 0, "mx1.example.com.", 10)}},
			ip:     map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1")}},
			want:   []string{"10 mx1.example.com 192.0.2.1:25"},
			asked:  []string{"MX example.com.", "IP mx1.example.com."},
		},
		{
			name:     "MX lookup temporary failure: no implicit MX",
			domain:   "example.com",
			mx:       map[string]resMX{"example.com.": {err: resTempErr("example.com.")}},
			ip:       map[string]resIP{"example.com.": {addrs: resIPs("192.0.2.9")}},
			wantTemp: true,
			asked:    []string{"MX example.com."},
		},
		{
			name:     "MX lookup timeout",
			domain:   "example.com",
			mx:       map[string]resMX{"example.com.": {err: &net.DNSError{Err: "i/o timeout", Name: "example.com.", IsTimeout: true}}},
			wantTemp: true,
			asked:    []string{"MX example.com."},
		},
		{
			name:     "MX lookup error of unknown cause counts as temporary",
			domain:   "example.com",
			mx:       map[string]resMX{"example.com.": {err: &net.DNSError{Err: "cannot unmarshal DNS message", Name: "example.com."}}},
			wantTemp: true,
			asked:    []string{"MX example.com."},
		},
		{
			name:     "MX lookup error that is not a *net.DNSError counts as temporary",
			domain:   "example.com",
			mx:       map[string]resMX{"example.com.": {err: errors.New("resolver on fire")}},
			wantTemp: true,
			asked:    []string{"MX example.com."},
		},
		{
			name:   "nil MX records are skipped",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: []*net.MX{nil, {Host: "mx1.example.com.", Pref: 10}, nil}}},
			ip:     map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1")}},
			want:   []string{"10 mx1.example.com 192.0.2.1:25"},
		},
		{
			name:   "only nil MX records: implicit MX",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: []*net.MX{nil}}},
			ip:     map[string]resIP{"example.com.": {addrs: resIPs("192.0.2.9")}},
			want:   []string{"0 example.com 192.0.2.9:25"},
		},
		{
			name:   "MX records returned with an error are used",
			domain: "example.com",
			mx: map[string]resMX{"example.com.": {
				records: resMXs("mx1.example.com.", 10),
				err:     &net.DNSError{Err: "DNS response contained records which contain invalid names", Name: "example.com."},
			}},
			ip:   map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1")}},
			want: []string{"10 mx1.example.com 192.0.2.1:25"},
		},
		{
			name:   "IDN",
			domain: "bücher.example",
			mx:     map[string]resMX{"xn--bcher-kva.example.": {records: resMXs("mx.xn--bcher-kva.example.", 5)}},
			ip:     map[string]resIP{"mx.xn--bcher-kva.example.": {addrs: resIPs("192.0.2.5")}},
			want:   []string{"5 mx.xn--bcher-kva.example 192.0.2.5:25"},
			asked:  []string{"MX xn--bcher-kva.example.", "IP mx.xn--bcher-kva.example."},
		},
		{
			name:   "IDN implicit MX, full-width and ideographic full stops",
			domain: "ＢÜＣＨＥＲ。example。",
			mx:     map[string]resMX{"xn--bcher-kva.example.": {}},
			ip:     map[string]resIP{"xn--bcher-kva.example.": {addrs: resIPs("192.0.2.5")}},
			want:   []string{"0 xn--bcher-kva.example 192.0.2.5:25"},
			asked:  []string{"MX xn--bcher-kva.example.", "IP xn--bcher-kva.example."},
		},
		{
			name:   "upper case and a trailing dot",
			domain: "EXAMPLE.Com.",
			mx:     map[string]resMX{"example.com.": {records: resMXs("MX1.Example.COM.", 10)}},
			ip:     map[string]resIP{"MX1.Example.COM.": {addrs: resIPs("192.0.2.1")}},
			want:   []string{"10 MX1.Example.COM 192.0.2.1:25"},
			asked:  []string{"MX example.com.", "IP MX1.Example.COM."},
		},
		{
			name:   "MX host without a trailing dot",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com", 10)}},
			ip:     map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1")}},
			want:   []string{"10 mx1.example.com 192.0.2.1:25"},
		},
		{
			name:   "one host failing",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20, "mx3.example.com.", 30)}},
			ip: map[string]resIP{
				"mx1.example.com.": {err: resTempErr("mx1.example.com.")},
				"mx3.example.com.": {addrs: resIPs("192.0.2.3")},
			},
			want:  []string{"30 mx3.example.com 192.0.2.3:25"},
			asked: []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com.", "IP mx3.example.com."},
		},
		{
			name:   "host without addresses is skipped",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {},
				"mx2.example.com.": {addrs: resIPs("192.0.2.2")},
			},
			want: []string{"20 mx2.example.com 192.0.2.2:25"},
		},
		{
			name:   "unusable addresses are dropped",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: append(resIPs("0.0.0.0", "::", "224.0.0.1", "ff02::1"), net.IPAddr{IP: net.IP{1, 2, 3}})},
				"mx2.example.com.": {addrs: resIPs("0.0.0.0", "192.0.2.2")},
			},
			want: []string{"20 mx2.example.com 192.0.2.2:25"},
		},
		{
			name:   "all hosts fail, one temporarily",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx2.example.com.": {err: resTempErr("mx2.example.com.")},
			},
			wantErr:  ErrNoAddress,
			wantTemp: true,
		},
		{
			name:   "all hosts fail permanently",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20, "mx3.example.com.", 30)}},
			ip: map[string]resIP{
				"mx2.example.com.": {},
				"mx3.example.com.": {addrs: resIPs("0.0.0.0")},
			},
			wantErr: ErrNoAddress,
			asked:   []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com.", "IP mx3.example.com."},
		},
		{
			name:   "MX records present but unusable: no implicit MX",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10)}},
			ip: map[string]resIP{
				"example.com.": {addrs: resIPs("192.0.2.9")},
			},
			wantErr: ErrNoAddress,
			asked:   []string{"MX example.com.", "IP mx1.example.com."},
		},
		{
			name:   "duplicate addresses removed",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: append(resIPs("192.0.2.1", "2001:db8::1"), net.IPAddr{IP: net.IP{192, 0, 2, 1}})},
				"mx2.example.com.": {addrs: resIPs("192.0.2.1", "192.0.2.2", "::ffff:192.0.2.2")},
			},
			want: []string{
				"10 mx1.example.com 192.0.2.1:25",
				"10 mx1.example.com [2001:db8::1]:25",
				"20 mx2.example.com 192.0.2.2:25",
			},
		},
		{
			name:   "repeated MX host looked up once, at its best preference",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx2.example.com.", 20, "MX1.example.com.", 30, "mx1.example.com.", 10, "mx1.example.com", 10)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: resIPs("192.0.2.1")},
				"mx2.example.com.": {addrs: resIPs("192.0.2.2")},
			},
			want:  []string{"10 mx1.example.com 192.0.2.1:25", "20 mx2.example.com 192.0.2.2:25"},
			asked: []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com."},
		},
		{
			name:   "MX host that is an IP address is used as it is",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("192.0.2.7.", 10, "2001:db8::7", 20, "0.0.0.0", 30)}},
			want:   []string{"10 192.0.2.7 192.0.2.7:25", "20 2001:db8::7 [2001:db8::7]:25"},
			asked:  []string{"MX example.com."},
		},
		{
			name:   "MaxHosts",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": twelve},
			ip:     twelveIP,
			r:      Resolver{MaxHosts: 2},
			want:   []string{"1 mx1.example.com 192.0.2.1:25", "2 mx2.example.com 192.0.2.2:25"},
			asked:  []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com."},
		},
		{
			name:   "MaxHosts counts hosts that fail",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20, "mx3.example.com.", 30)}},
			ip:     map[string]resIP{"mx3.example.com.": {addrs: resIPs("192.0.2.3")}},
			r:      Resolver{MaxHosts: 2},
			// mx3 is beyond the bound.
			wantErr: ErrNoAddress,
			asked:   []string{"MX example.com.", "IP mx1.example.com.", "IP mx2.example.com."},
		},
		{
			name:   "default MaxHosts is 10",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": twelve},
			ip:     twelveIP,
			want: []string{
				"1 mx1.example.com 192.0.2.1:25", "2 mx2.example.com 192.0.2.2:25",
				"3 mx3.example.com 192.0.2.3:25", "4 mx4.example.com 192.0.2.4:25",
				"5 mx5.example.com 192.0.2.5:25", "6 mx6.example.com 192.0.2.6:25",
				"7 mx7.example.com 192.0.2.7:25", "8 mx8.example.com 192.0.2.8:25",
				"9 mx9.example.com 192.0.2.9:25", "10 mx10.example.com 192.0.2.10:25",
			},
		},
		{
			name:   "MaxAddrs stops the lookups",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: resIPs("192.0.2.1", "2001:db8::1", "192.0.2.11")},
				"mx2.example.com.": {addrs: resIPs("192.0.2.2")},
			},
			r:     Resolver{MaxAddrs: 2},
			want:  []string{"10 mx1.example.com 192.0.2.1:25", "10 mx1.example.com [2001:db8::1]:25"},
			asked: []string{"MX example.com.", "IP mx1.example.com."},
		},
		{
			name:   "default MaxAddrs is 20",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10, "mx2.example.com.", 20)}},
			ip: map[string]resIP{
				"mx1.example.com.": {addrs: many("192.0.2.", 15)},
				"mx2.example.com.": {addrs: many("198.51.100.", 15)},
			},
			want: func() []string {
				var w []string
				for i := 1; i <= 15; i++ {
					w = append(w, fmt.Sprintf("10 mx1.example.com 192.0.2.%d:25", i))
				}
				for i := 1; i <= 5; i++ {
					w = append(w, fmt.Sprintf("20 mx2.example.com 198.51.100.%d:25", i))
				}
				return w
			}(),
		},
		{
			name:   "Port",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10)}},
			ip:     map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1", "2001:db8::1")}},
			r:      Resolver{Port: "2525"},
			want:   []string{"10 mx1.example.com 192.0.2.1:2525", "10 mx1.example.com [2001:db8::1]:2525"},
		},
		{
			name:   "link-local address keeps its zone",
			domain: "example.com",
			mx:     map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10)}},
			ip:     map[string]resIP{"mx1.example.com.": {addrs: []net.IPAddr{{IP: net.ParseIP("fe80::1"), Zone: "eth0"}}}},
			want:   []string{"10 mx1.example.com [fe80::1%eth0]:25"},
		},
		// Domain literals: no DNS.
		{
			name:   "IPv4-mapped IPv6 domain literal",
			domain: "[IPv6:::ffff:192.0.2.1]",
			want:   []string{"0 192.0.2.1 192.0.2.1:25"},
			asked:  []string{},
		},
		{
			name:   "IPv4 domain literal",
			domain: "[192.0.2.1]",
			want:   []string{"0 192.0.2.1 192.0.2.1:25"},
			asked:  []string{},
		},
		{
			name:   "IPv6 domain literal",
			domain: "[IPv6:2001:db8::1]",
			want:   []string{"0 2001:db8::1 [2001:db8::1]:25"},
			asked:  []string{},
		},
		{
			name:   "IPv6 domain literal, tag in lower case, address in upper case",
			domain: "[ipv6:2001:DB8::1]",
			r:      Resolver{Port: "587"},
			want:   []string{"0 2001:db8::1 [2001:db8::1]:587"},
			asked:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := &resFakeDNS{mx: tt.mx, ip: tt.ip}
			r := tt.r
			r.DNS = dns
			r.intn = resNoShuffle
			got, err := r.Resolve(context.Background(), tt.domain)
			if tt.wantErr == nil && !tt.wantTemp {
				require.NoError(t, err, "Resolve(%q)", tt.domain)
				assert.Equal(t, tt.want, resFmt(got), "Resolve(%q)", tt.domain)
			} else {
				require.Error(t, err, "Resolve(%q) = %q, want an error", tt.domain, resFmt(got))
				assert.Nil(t, got, "Resolve(%q) returned targets %q with its error", tt.domain, resFmt(got))
				var re *ResolveError
				require.ErrorAs(t, err, &re, "Resolve(%q)", tt.domain)
				assert.Equal(t, tt.domain, re.Domain, "ResolveError.Domain")
				if tt.wantErr != nil {
					assert.ErrorIs(t, err, tt.wantErr, "Resolve(%q)", tt.domain)
				}
				assert.Equal(t, tt.wantTemp, re.Temporary(), "Resolve(%q): %v: Temporary()", tt.domain, err)
				assert.ErrorContains(t, err, tt.domain, "the error does not name the domain")
			}
			switch {
			case tt.asked == nil:
			case len(tt.asked) == 0:
				assert.Empty(t, dns.asked, "DNS asked")
			default:
				assert.Equal(t, tt.asked, dns.asked, "DNS asked")
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	dns := &resFakeDNS{
		mx: map[string]resMX{
			"null.example.": {records: resMXs(".", 0)},
			"temp.example.": {err: resTempErr("temp.example.")},
			"mx.example.":   {records: resMXs("a.mx.example.", 10, "b.mx.example.", 20)},
		},
		ip: map[string]resIP{
			"b.mx.example.": {err: &net.DNSError{Err: "i/o timeout", Name: "b.mx.example.", IsTimeout: true}},
		},
	}
	r := &Resolver{DNS: dns}
	ctx := context.Background()

	_, err := r.Resolve(ctx, "null.example")
	assert.EqualError(t, err, "smtp: resolving null.example: domain accepts no mail (null MX)", "null MX")

	_, err = r.Resolve(ctx, "temp.example")
	var dnsErr *net.DNSError
	if assert.ErrorAs(t, err, &dnsErr, "temporary MX failure") {
		assert.True(t, dnsErr.IsTemporary, "temporary MX failure: %v: no temporary *net.DNSError for temp.example.", err)
		assert.Equal(t, "temp.example.", dnsErr.Name, "temporary MX failure: %v: no temporary *net.DNSError for temp.example.", err)
	}

	_, err = r.Resolve(ctx, "mx.example")
	want := "smtp: resolving mx.example: no address to deliver to: lookup a.mx.example.: no such host; lookup b.mx.example.: i/o timeout"
	assert.EqualError(t, err, want, "all hosts failing")
	var re *ResolveError
	require.ErrorAs(t, err, &re, "all hosts failing: want a temporary *ResolveError with 2 host errors")
	require.Len(t, re.hostErrs, 2, "all hosts failing: %#v, want a temporary *ResolveError with 2 host errors", err)
	require.True(t, re.Temporary(), "all hosts failing: %#v, want a temporary *ResolveError with 2 host errors", err)
	if assert.ErrorAs(t, err, &dnsErr, "want the first host's not-found error") {
		assert.True(t, dnsErr.IsNotFound, "errors.As found %v, want the first host's not-found error", dnsErr)
		assert.Equal(t, "a.mx.example.", dnsErr.Name, "errors.As found %v, want the first host's not-found error", dnsErr)
	}
	if assert.ErrorAs(t, re.hostErrs[1], &dnsErr, "second host error, want a timeout") {
		assert.True(t, dnsErr.Timeout(), "second host error %v, want a timeout", re.hostErrs[1])
	}

	_, err = r.Resolve(ctx, "bad_domain.example")
	if assert.ErrorIs(t, err, ErrInvalidDomain, "invalid domain") {
		assert.True(t, strings.HasPrefix(err.Error(), "smtp: resolving bad_domain.example: invalid domain: "), "invalid domain: %v", err)
	}
}

func TestResolveInvalidDomain(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	long253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	for _, domain := range []string{
		"",
		".",
		"..",
		"a..example",
		".example.com",
		"example.com..",
		"-a.example",
		"a-.example",
		"a_b.example",
		"ex ample.com",
		"a\x00b.example",
		"user@example.com",
		"example.com:25",
		"xn--zz.example",
		"\xff.example",
		strings.Repeat("a", 64) + ".example",
		long253 + "c",
		long253 + ".c",
		"192.0.2.1",
		"192.0.2.1.",
		"2001:db8::1",
		"[300.0.0.1]",
		"[192.0.2.1",
		"[]",
		"[ 192.0.2.1]",
		"[192.0.2.01]",
		"[IPv6:192.0.2.1]",
		"[IPv6:]",
		"[2001:db8::1]",
		"[::ffff:192.0.2.1]",
		"[x-tag:abc]",
		"[IPv6:fe80::1%eth0]",
		"[0.0.0.0]",
		"[IPv6:::]",
		"[224.0.0.1]",
		"[example.com]",
	} {
		dns := &resFakeDNS{}
		r := &Resolver{DNS: dns}
		got, err := r.Resolve(context.Background(), domain)
		var re *ResolveError
		if assert.ErrorIs(t, err, ErrInvalidDomain, "Resolve(%q) = %q", domain, resFmt(got)) &&
			assert.ErrorAs(t, err, &re, "Resolve(%q) = %q", domain, resFmt(got)) {
			assert.False(t, re.Temporary(), "Resolve(%q) = %q, %v; want a permanent ErrInvalidDomain", domain, resFmt(got), err)
		}
		assert.Empty(t, dns.asked, "Resolve(%q) asked the DNS", domain)
	}

	// The longest name is valid.
	dns := &resFakeDNS{mx: map[string]resMX{long253 + ".": {}}, ip: map[string]resIP{long253 + ".": {addrs: resIPs("192.0.2.1")}}}
	got, err := (&Resolver{DNS: dns}).Resolve(context.Background(), long253)
	assert.NoError(t, err, "Resolve(253 octets)")
	assert.Len(t, got, 1, "Resolve(253 octets) = %q", resFmt(got))
}

func TestResolveShufflesEqualPreferences(t *testing.T) {
	dns := &resFakeDNS{
		mx: map[string]resMX{"example.com.": {records: resMXs(
			"a.example.com.", 10, "e.example.com.", 20, "b.example.com.", 10,
			"d.example.com.", 5, "c.example.com.", 10)}},
		ip: map[string]resIP{
			"a.example.com.": {addrs: resIPs("192.0.2.1")},
			"b.example.com.": {addrs: resIPs("192.0.2.2")},
			"c.example.com.": {addrs: resIPs("192.0.2.3")},
			"d.example.com.": {addrs: resIPs("192.0.2.4")},
			"e.example.com.": {addrs: resIPs("192.0.2.5")},
		},
	}
	order := func(r *Resolver) string {
		t.Helper()
		ts, err := r.Resolve(context.Background(), "example.com")
		require.NoError(t, err)
		var s string
		for _, x := range ts {
			s += x.Host[:1]
		}
		require.Len(t, s, 5, "order %q: want d first and e last", s)
		require.Equal(t, "d", s[:1], "order %q: want d first and e last", s)
		require.Equal(t, "e", s[4:], "order %q: want d first and e last", s)
		return s[1:4]
	}
	seen := map[string]bool{}
	const maxSeeds = 1000
	for seed := uint64(0); seed < maxSeeds && len(seen) < 6; seed++ {
		rnd := rand.New(rand.NewPCG(seed, seed))
		o := order(&Resolver{DNS: dns, intn: rnd.IntN})
		seen[o] = true
		// The same seed gives the same order.
		again := rand.New(rand.NewPCG(seed, seed))
		require.Equal(t, o, order(&Resolver{DNS: dns, intn: again.IntN}), "seed %d: the order again", seed)
	}
	assert.Len(t, seen, 6, "the orders of equal preferences seen in %d seeds", maxSeeds)

	// The default source of randomness.
	order(&Resolver{DNS: dns})
	// An intn out of range does not panic.
	assert.Equal(t, "abc", order(&Resolver{DNS: dns, intn: func(n int) int { return n }}), "intn out of range: order")
	order(&Resolver{DNS: dns, intn: func(int) int { return -1 }})
}

func TestResolveContext(t *testing.T) {
	dns := &resFakeDNS{
		mx: map[string]resMX{"example.com.": {records: resMXs("mx1.example.com.", 10)}},
		ip: map[string]resIP{"mx1.example.com.": {addrs: resIPs("192.0.2.1")}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := (&Resolver{DNS: dns}).Resolve(ctx, "example.com")
	var re *ResolveError
	assert.Nil(t, got, "canceled: %q, %v; want a temporary context.Canceled", resFmt(got), err)
	assert.ErrorIs(t, err, context.Canceled, "canceled: want a temporary context.Canceled")
	if assert.ErrorAs(t, err, &re, "canceled: want a temporary context.Canceled") {
		assert.True(t, re.Temporary(), "canceled: %q, %v; want a temporary context.Canceled", resFmt(got), err)
	}
	assert.Empty(t, dns.asked, "canceled: DNS asked")

	// Canceled after the MX lookup.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	cd := &resCancelDNS{resFakeDNS: dns, cancel: cancel}
	dns.asked = nil
	got, err = (&Resolver{DNS: cd}).Resolve(ctx, "example.com")
	assert.Nil(t, got, "canceled after MX: %q, %v; want context.Canceled", resFmt(got), err)
	assert.ErrorIs(t, err, context.Canceled, "canceled after MX")
	assert.Equal(t, []string{"MX example.com."}, dns.asked, "canceled after MX: DNS asked")
}

// resCancelDNS cancels a context once the MX records are looked up.
type resCancelDNS struct {
	*resFakeDNS
	cancel context.CancelFunc
}

func (d *resCancelDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	defer d.cancel()
	return d.resFakeDNS.LookupMX(ctx, name)
}

func TestResolveNilResolver(t *testing.T) {
	var r *Resolver
	got, err := r.Resolve(context.Background(), "[IPv6:2001:db8::25]")
	assert.NoError(t, err, "nil Resolver")
	if assert.Len(t, got, 1, "nil Resolver: %q", resFmt(got)) {
		assert.Equal(t, "[2001:db8::25]:25", got[0].Addr, "nil Resolver")
	}
}

func TestReorderForRestart(t *testing.T) {
	targets := []Target{
		{Host: "mx1.example.com", Pref: 10, Addr: "192.0.2.1:25"},
		{Host: "mx1.example.com", Pref: 10, Addr: "[2001:db8::1]:25"},
		{Host: "mx2.example.com", Pref: 20, Addr: "192.0.2.3:25"},
		{Host: "mx3.example.com", Pref: 30, Addr: "192.0.2.4:25"},
	}
	orig := slices.Clone(targets)
	tests := []struct {
		original string
		want     []int // indexes into targets
	}{
		{"192.0.2.3:25", []int{2, 0, 1, 3}},
		{"192.0.2.4:25", []int{3, 0, 1, 2}},
		{"192.0.2.1:25", []int{0, 1, 2, 3}},
		{"[2001:db8::1]:25", []int{1, 0, 2, 3}},
		{"[2001:DB8:0::1]:25", []int{1, 0, 2, 3}},
		{"[::ffff:192.0.2.3]:25", []int{2, 0, 1, 3}},
		{"192.0.2.3:587", []int{0, 1, 2, 3}}, // another port: not the same server
		{"192.0.2.9:25", []int{0, 1, 2, 3}},
		{"mx2.example.com:25", []int{0, 1, 2, 3}},
		{"", []int{0, 1, 2, 3}},
	}
	for _, tt := range tests {
		got := reorderForRestart(targets, tt.original)
		var want []Target
		for _, i := range tt.want {
			want = append(want, targets[i])
		}
		assert.Equal(t, want, got, "reorderForRestart(%q)", tt.original)
		require.Equal(t, orig, targets, "reorderForRestart(%q) modified its argument", tt.original)
		got[0].Addr = "changed"
		require.Equal(t, orig, targets, "reorderForRestart(%q) returned its argument's array", tt.original)
	}
	assert.Empty(t, reorderForRestart(nil, "192.0.2.1:25"), "reorderForRestart(nil)")
}

// resFuzzDNS answers every name, choosing the answer by a hash of the name,
// and records the names asked.
type resFuzzDNS struct {
	mu    sync.Mutex
	asked []string
}

func resHash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func (d *resFuzzDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	d.mu.Lock()
	d.asked = append(d.asked, name)
	d.mu.Unlock()
	switch resHash(name) % 6 {
	case 0:
		return nil, nil
	case 1:
		return resMXs(".", 0), nil
	case 2:
		return nil, resNotFound(name)
	case 3:
		return nil, resTempErr(name)
	case 4:
		return resMXs("a.mx.example.", 10, "b.mx.example.", 10, ".", 0, "192.0.2.5.", 30, "a.mx.example", 40), nil
	}
	return resMXs("c.mx.example.", 10, "d.mx.example.", 20), resTempErr(name)
}

func (d *resFuzzDNS) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	d.mu.Lock()
	d.asked = append(d.asked, host)
	d.mu.Unlock()
	switch resHash(host) % 5 {
	case 0:
		return nil, resNotFound(host)
	case 1:
		return resIPs("192.0.2.1", "2001:db8::1"), nil
	case 2:
		return resIPs("0.0.0.0", "::"), nil
	case 3:
		var out []net.IPAddr
		for i := range 30 {
			out = append(out, resIPs(fmt.Sprintf("198.51.100.%d", i%25))...)
		}
		return out, nil
	}
	return nil, resTempErr(host)
}

// resValidName reports whether name is what Resolve may ask the DNS: ASCII,
// fully qualified, at most 254 octets, without empty labels.
func resValidName(name string) bool {
	if len(name) < 2 || len(name) > 254 || !strings.HasSuffix(name, ".") {
		return false
	}
	for i := range len(name) {
		if name[i] >= utf8.RuneSelf || name[i] <= ' ' {
			return false
		}
	}
	for label := range strings.SplitSeq(name[:len(name)-1], ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

func FuzzResolveDomain(f *testing.F) {
	for _, s := range []string{
		"example.com", "bücher.example", "[192.0.2.1]", "[IPv6:2001:db8::1]",
		"", ".", "a..b", "null.example", "xn--bcher-kva.example", "192.0.2.1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, domain string) {
		dns := &resFuzzDNS{}
		r := &Resolver{DNS: dns, intn: rand.New(rand.NewPCG(1, 2)).IntN}
		got, err := r.Resolve(context.Background(), domain)
		if err != nil {
			var re *ResolveError
			require.ErrorAs(t, err, &re, "Resolve(%q)", domain)
			require.Nil(t, got, "Resolve(%q) returned targets with error %v", domain, err)
			_ = re.Temporary()
			_ = err.Error()
		} else {
			require.NotEmpty(t, got, "Resolve(%q) returned no targets", domain)
			require.LessOrEqual(t, len(got), defaultMaxAddrs, "Resolve(%q) returned %d targets", domain, len(got))
			seen := map[netip.Addr]bool{}
			for _, tg := range got {
				ap, err := netip.ParseAddrPort(tg.Addr)
				require.NoError(t, err, "Resolve(%q): bad Addr %q", domain, tg.Addr)
				require.Equal(t, uint16(25), ap.Port(), "Resolve(%q): bad Addr %q", domain, tg.Addr)
				require.True(t, ap.Addr().IsValid(), "Resolve(%q): bad Addr %q", domain, tg.Addr)
				require.False(t, ap.Addr().IsUnspecified(), "Resolve(%q): bad Addr %q", domain, tg.Addr)
				require.False(t, ap.Addr().Is4In6(), "Resolve(%q): bad Addr %q", domain, tg.Addr)
				require.False(t, seen[ap.Addr()], "Resolve(%q): %s repeated", domain, tg.Addr)
				seen[ap.Addr()] = true
				require.NotEmpty(t, tg.Host, "Resolve(%q): bad Host %q", domain, tg.Host)
				require.False(t, strings.HasSuffix(tg.Host, "."), "Resolve(%q): bad Host %q", domain, tg.Host)
			}
		}
		for _, name := range dns.asked {
			require.True(t, resValidName(name), "Resolve(%q) asked the DNS for %q", domain, name)
		}
	})
}
