package smtp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// DNS is the part of [*net.Resolver] that a [Resolver] uses. Tests and
// programs with their own DNS client can supply another implementation.
//
// LookupMX returns the MX records of name; an empty list with a nil error
// means that the name exists but has no MX records. LookupIPAddr returns the
// IPv4 and IPv6 addresses of host, in the order they should be tried. Either
// may return records together with an error, as *net.Resolver does for a
// partly malformed answer; the records are then used.
type DNS interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Defaults for the Resolver's limits.
const (
	defaultMaxHosts = 10
	defaultMaxAddrs = 20
)

// A Resolver finds the addresses to deliver mail for a domain to, following
// RFC 5321 §5.1: the MX records of the domain in order of preference, or the
// domain itself when it has none.
//
// The zero value, and a nil *Resolver, use net.DefaultResolver, port 25 and
// the default limits. A Resolver is safe for concurrent use if its DNS is.
type Resolver struct {
	// DNS answers the lookups. If nil, net.DefaultResolver is used.
	DNS DNS

	// Port is the port, a number or a service name, put in every Target's
	// Addr. If empty, "25" is used.
	Port string

	// MaxHosts bounds the number of mail exchangers looked up, counting
	// from the most preferred (RFC 5321 §5.1 allows a configurable limit).
	// If zero or negative, 10 is used.
	MaxHosts int

	// MaxAddrs bounds the number of Targets returned; once it is reached
	// no further hosts are looked up. If zero or negative, 20 is used.
	MaxAddrs int

	// intn returns a random integer in [0, n), for the order of the mail
	// exchangers of equal preference, which RFC 5321 §5.1 requires to be
	// randomized; nil means math/rand/v2's IntN. Tests set it.
	intn func(n int) int
}

// A Target is one address to try delivering to.
type Target struct {
	// Host is the mail exchanger the address belongs to, without a trailing
	// dot: an MX host name as the DNS gave it, the domain itself (in ASCII
	// form) for an implicit MX, or the IP address for a domain literal.
	Host string
	// Pref is the MX preference of Host; 0 for an implicit MX or a domain
	// literal.
	Pref uint16
	// Addr is the address to dial, "ip:port" (IPv6 in brackets), as
	// net.JoinHostPort formats it.
	Addr string
	// Security, set by an MXPolicy, is how the connection to Addr must be
	// protected; nil means as the Dialer says.
	Security *Security
}

var (
	// ErrNullMX reports a domain that publishes a null MX record (RFC 7505):
	// it accepts no mail. The failure is permanent; RFC 7505 §4.1 suggests
	// reply code 556 and enhanced status code 5.1.10 for it.
	ErrNullMX = errors.New("smtp: domain accepts no mail (null MX)")

	// ErrNoAddress reports that the DNS gave no usable address for any of a
	// domain's mail exchangers (or for the domain itself when it has no MX
	// records). A *ResolveError that wraps it holds the error of each host.
	ErrNoAddress = errors.New("smtp: no address to deliver to")

	// ErrInvalidDomain reports a domain that is not a valid domain name or
	// domain literal. The failure is permanent.
	ErrInvalidDomain = errors.New("smtp: invalid domain")
)

// A ResolveError reports why [Resolver.Resolve] found no address to try.
// errors.Is finds ErrNullMX, ErrNoAddress and ErrInvalidDomain in it, and
// errors.As the *net.DNSError of a failed lookup.
type ResolveError struct {
	// Domain is the domain given to Resolve.
	Domain string
	// Err is, or wraps, ErrInvalidDomain, ErrNullMX or ErrNoAddress, or it
	// is the error of the MX lookup (often a *net.DNSError) or of the
	// context.
	Err error

	// hostErrs holds, when Err is ErrNoAddress, the error of each host
	// looked up, in order: often a *net.DNSError with IsNotFound set when
	// the host has no address records. The text lists them and Unwrap
	// returns them.
	hostErrs []error
}

// Error returns the domain, what went wrong and, if any, each host's error.
func (e *ResolveError) Error() string {
	var b strings.Builder
	b.WriteString("smtp: resolving ")
	b.WriteString(e.Domain)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "smtp: "))
	}
	for i, err := range e.hostErrs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns Err followed by the error of each host looked up, when
// Err is ErrNoAddress.
func (e *ResolveError) Unwrap() []error {
	return append([]error{e.Err}, e.hostErrs...)
}

// Temporary reports whether resolving the domain again later may succeed,
// in which case RFC 5321 §5.1 requires the message to be queued and retried.
// It returns false only when the failure is known to be permanent: an
// invalid domain, a null MX, or lookups that all found no such name or no
// records (a *net.DNSError with IsNotFound and neither IsTimeout nor
// IsTemporary). Any other error, including a *net.DNSError whose cause is
// unknown and a context error, counts as temporary, so that an uncertain
// failure defers the message rather than bounces it.
func (e *ResolveError) Temporary() bool {
	switch {
	case errors.Is(e.Err, ErrInvalidDomain), errors.Is(e.Err, ErrNullMX):
		return false
	case errors.Is(e.Err, ErrNoAddress):
		return slices.ContainsFunc(e.hostErrs, temporary)
	}
	return temporary(e.Err)
}

// temporary reports whether err is not known to be a permanent lookup
// failure.
func temporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var d *net.DNSError
	if errors.As(err, &d) {
		return d.IsTimeout || d.IsTemporary || !d.IsNotFound
	}
	return true
}

// Resolve returns the addresses to try, in order, to deliver mail for
// domain, the part of a recipient's address after the "@".
//
// A domain may be written in Unicode; it is converted with idna.Lookup
// (UTS #46) and must then be a valid host name of at most 253 octets. It may
// end in a dot. Names are looked up fully qualified, with a trailing dot, so
// that no search list applies (RFC 5321 §5.1). A domain literal, "[192.0.2.1]"
// or "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3), gives its address without any
// lookup; an IP address outside brackets is not a domain.
//
// Resolve looks up the MX records of the domain and orders them by
// preference, the lowest first, shuffling those of equal preference with
// math/rand/v2. It drops repeated hosts and keeps the first MaxHosts. If the domain
// has no MX records — the DNS answers an empty list, or a *net.DNSError with
// IsNotFound, which *net.Resolver returns both for a name without MX records
// and for a name that does not exist — the domain itself is the one host,
// with preference 0 (the implicit MX); for a domain that does not exist, its
// address lookup fails too. A domain whose MX records are all the null MX
// "." (RFC 7505: a single record, of any preference) yields ErrNullMX, and
// no other lookup is made; a "." among other MX records, which RFC 7505 §3
// forbids, is ignored. Any other failure of the MX lookup is returned, with
// no implicit MX.
//
// Each host's addresses, of both families, are then looked up and kept in
// the order the DNS gives them: RFC 5321 §5.1 requires a multihomed host's
// addresses to be tried in the order presented, and *net.Resolver sorts them
// by RFC 6724, which already puts the family the local host can reach first.
// An MX host that is an IP address is used as it is. Unspecified and
// multicast addresses, and addresses already listed for a more preferred
// host, are dropped. A host whose lookup fails or gives no address is
// skipped. At most MaxAddrs Targets are returned.
//
// If no address is found, Resolve returns nil and a *ResolveError, whose
// Temporary method tells a failure worth retrying from a permanent one. Its
// Err wraps ErrInvalidDomain, is ErrNullMX, is ErrNoAddress (with each
// host's error in its text and Unwrap), or is the MX lookup's or the context's error.
func (r *Resolver) Resolve(ctx context.Context, domain string) ([]Target, error) {
	fail := func(err error, errs ...error) ([]Target, error) {
		return nil, &ResolveError{Domain: domain, Err: err, hostErrs: errs}
	}
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		ip, err := parseDomainLiteral(domain[1 : len(domain)-1])
		if err != nil {
			return fail(err)
		}
		return []Target{{Host: ip.String(), Addr: net.JoinHostPort(ip.String(), r.port())}}, nil
	}
	name, err := asciiDomain(domain)
	if err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}

	dns := r.dns()
	records, err := dns.LookupMX(ctx, name+".")
	if len(records) == 0 && err != nil && temporary(err) {
		return fail(err) // not known to be "no MX records": no implicit MX
	}
	hosts, null := r.exchangers(records)
	if null {
		return fail(ErrNullMX)
	}
	if len(hosts) == 0 {
		hosts = []Target{{Host: name}} // the implicit MX
	}

	var (
		targets []Target
		seen    = make(map[netip.Addr]bool)
		errs    []error
		limit   = r.maxAddrs()
	)
	for _, h := range hosts {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		addrs, err := lookupHost(ctx, dns, h.Host)
		if len(addrs) == 0 {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			if seen[a] {
				continue
			}
			seen[a] = true
			h.Addr = net.JoinHostPort(a.String(), r.port())
			targets = append(targets, h)
			if len(targets) == limit {
				return targets, nil
			}
		}
	}
	if len(targets) == 0 {
		return fail(ErrNoAddress, errs...)
	}
	return targets, nil
}

// exchangers returns the usable MX hosts of records, without trailing dots,
// ordered by preference with equal preferences shuffled, without repeats and
// at most r.MaxHosts of them. It reports whether records is a null MX: one or
// more records, all of them ".".
func (r *Resolver) exchangers(records []*net.MX) (hosts []Target, null bool) {
	n := 0
	for _, mx := range records {
		if mx == nil {
			continue
		}
		n++
		host := strings.TrimSuffix(mx.Host, ".")
		if host == "" {
			continue
		}
		hosts = append(hosts, Target{Host: host, Pref: mx.Pref})
	}
	if n > 0 && len(hosts) == 0 {
		return nil, true
	}
	slices.SortStableFunc(hosts, func(a, b Target) int { return cmp.Compare(a.Pref, b.Pref) })
	for i := 0; i < len(hosts); {
		j := i + 1
		for j < len(hosts) && hosts[j].Pref == hosts[i].Pref {
			j++
		}
		r.shuffle(hosts[i:j])
		i = j
	}
	seen := make(map[string]bool, len(hosts))
	hosts = slices.DeleteFunc(hosts, func(t Target) bool {
		key := strings.ToLower(t.Host)
		if seen[key] {
			return true
		}
		seen[key] = true
		return false
	})
	if limit := r.maxHosts(); len(hosts) > limit {
		hosts = hosts[:limit]
	}
	return hosts, false
}

// shuffle puts s in random order with r.intn (Fisher–Yates).
func (r *Resolver) shuffle(s []Target) {
	intn := rand.IntN
	if r != nil && r.intn != nil {
		intn = r.intn
	}
	for i := len(s) - 1; i > 0; i-- {
		j := intn(i + 1)
		if j < 0 || j > i {
			j = i // an intn out of range leaves the element in place
		}
		s[i], s[j] = s[j], s[i]
	}
}

// lookupHost returns the usable addresses of host, in the order the DNS
// gives them: host itself if it is an IP address. If there are none, it
// returns an error saying why.
func lookupHost(ctx context.Context, dns DNS, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		if !usable(ip) {
			return nil, &net.DNSError{Err: "no usable address", Name: host, IsNotFound: true}
		}
		return []netip.Addr{ip.Unmap()}, nil
	}
	fqdn := host + "."
	ipaddrs, err := dns.LookupIPAddr(ctx, fqdn)
	var addrs []netip.Addr
	for _, ia := range ipaddrs {
		ip, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ia.Zone != "" && ip.Is6() {
			ip = ip.WithZone(ia.Zone)
		}
		if usable(ip) {
			addrs = append(addrs, ip)
		}
	}
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case err != nil:
		return nil, err
	case len(ipaddrs) > 0:
		return nil, &net.DNSError{Err: "no usable address", Name: fqdn, IsNotFound: true}
	}
	return nil, &net.DNSError{Err: "no such host", Name: fqdn, IsNotFound: true}
}

// usable reports whether ip is an address one can deliver mail to.
func usable(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast()
}

// asciiDomain returns domain in ASCII form, lower case and without a
// trailing dot, or an error wrapping ErrInvalidDomain if it is not a valid
// host name.
func asciiDomain(domain string) (string, error) {
	if !utf8.ValidString(domain) {
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidDomain)
	}
	name, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	name = strings.TrimSuffix(name, ".") // after ToASCII, which maps "。" to "."
	invalid := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrInvalidDomain, why)
	}
	switch {
	case name == "":
		return invalid("empty")
	case len(name) > 253:
		return invalid("longer than 253 octets")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return invalid("label empty or longer than 63 octets")
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return invalid("an IP address must be a domain literal, in brackets")
	}
	return name, nil
}

// parseDomainLiteral returns the address of a domain literal's content, the
// text between "[" and "]": a dotted IPv4 address or "IPv6:" and an IPv6
// address (RFC 5321 §4.1.3), an IPv4-mapped one as IPv4. It returns an error wrapping ErrInvalidDomain
// for anything else, including a general address literal or an unusable
// address.
func parseDomainLiteral(s string) (netip.Addr, error) {
	var (
		ip  netip.Addr
		err error
	)
	if len(s) >= 5 && strings.EqualFold(s[:5], "IPv6:") {
		ip, err = netip.ParseAddr(s[5:])
		if err == nil && (!ip.Is6() || ip.Zone() != "") {
			err = errors.New("not an IPv6 address")
		}
	} else if strings.Contains(s, ":") {
		err = errors.New("unsupported address literal")
	} else {
		ip, err = netip.ParseAddr(s)
		if err == nil && !ip.Is4() {
			err = errors.New("not an IPv4 address")
		}
	}
	if err == nil && !usable(ip) {
		err = errors.New("not a usable address")
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrInvalidDomain, err)
	}
	return ip.Unmap(), nil
}

// reorderForRestart returns targets with the one whose Addr is original
// first and the others in their order, for restarting an interrupted
// transaction (RFC 1845 §3): after resolving the domain again, the address
// the transaction started on is tried first if it is still listed. original
// is an "ip:port" such as net.Conn.RemoteAddr().String(); addresses compare
// as IPs and ports, so spelling differences do not matter. If original is
// not listed, the result holds targets unchanged. targets itself is not
// modified.
func reorderForRestart(targets []Target, original string) []Target {
	out := slices.Clone(targets)
	i := slices.IndexFunc(out, func(t Target) bool { return sameAddr(t.Addr, original) })
	if i > 0 {
		t := out[i]
		copy(out[1:i+1], out[:i])
		out[0] = t
	}
	return out
}

// sameAddr reports whether the "ip:port" addresses a and b are the same.
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	pa, err := netip.ParseAddrPort(a)
	if err != nil {
		return false
	}
	pb, err := netip.ParseAddrPort(b)
	if err != nil {
		return false
	}
	return pa.Addr().Unmap() == pb.Addr().Unmap() && pa.Port() == pb.Port()
}

func (r *Resolver) dns() DNS {
	if r == nil || r.DNS == nil {
		return net.DefaultResolver
	}
	return r.DNS
}

func (r *Resolver) port() string {
	if r == nil || r.Port == "" {
		return "25"
	}
	return r.Port
}

func (r *Resolver) maxHosts() int {
	if r == nil || r.MaxHosts <= 0 {
		return defaultMaxHosts
	}
	return r.MaxHosts
}

func (r *Resolver) maxAddrs() int {
	if r == nil || r.MaxAddrs <= 0 {
		return defaultMaxAddrs
	}
	return r.MaxAddrs
}
