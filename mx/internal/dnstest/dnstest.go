// Package dnstest is a scriptable DNS server for tests: it runs in the
// process on a loopback port (UDP and TCP) and answers from records given
// in zone-file syntax, with the AD bit set on the answers for names marked
// secure, as a validating resolver would. A *net.Resolver pointed at it
// (Resolver) asks it real DNS questions.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// A Server answers from its records.
type Server struct {
	// Addr is the "127.0.0.1:port" it listens on, UDP and TCP.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case name and type: "name.\tTYPE"
	secure  map[string]bool     // names whose answers carry AD
	fail    map[string]int      // names answered with this rcode instead
	udp     *dns.Server
	tcp     *dns.Server
}

// New starts a Server with records in zone-file syntax, one per line,
// stopped when the test ends.
func New(t testing.TB, records ...string) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, secure: map[string]bool{}, fail: map[string]int{}}
	s.Add(t, records...)
	pc, ln, err := listenUDPAndTCP()
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

// listenUDPAndTCP listens on one loopback port for both UDP and TCP. The
// port is the system's choice for UDP; the same number may be taken for TCP
// (another test's connection), and then it tries another, a few times.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var err error
	for range 20 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, err
}

func key(name string, qtype uint16) string {
	return strings.ToLower(dns.Fqdn(name)) + "\t" + dns.TypeToString[qtype]
}

// Add adds records in zone-file syntax.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("dnstest: %q: %v", r, err)
		}
		k := key(rr.Header().Name, rr.Header().Rrtype)
		s.records[k] = append(s.records[k], rr)
	}
}

// Set replaces the records of name and type with records.
func (s *Server) Set(t testing.TB, name string, qtype uint16, records ...string) {
	s.mu.Lock()
	delete(s.records, key(name, qtype))
	s.mu.Unlock()
	s.Add(t, records...)
}

// Secure marks the answers for name as authenticated (AD), or not.
func (s *Server) Secure(name string, ad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secure[strings.ToLower(dns.Fqdn(name))] = ad
}

// Fail makes the server answer every question for name with rcode (such
// as dns.RcodeServerFailure); 0 undoes it.
func (s *Server) Fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[strings.ToLower(dns.Fqdn(name))] = rcode
}

// ServeDNS answers a question from the records.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		s.mu.Lock()
		if rc := s.fail[name]; rc != 0 {
			m.Rcode = rc
		} else {
			m.Answer = append(m.Answer, s.records[key(name, q.Qtype)]...)
			m.AuthenticatedData = s.secure[name]
			if len(m.Answer) == 0 && !s.hasName(name) {
				m.Rcode = dns.RcodeNameError
			}
		}
		s.mu.Unlock()
	}
	w.WriteMsg(m)
}

// hasName reports whether any record has name; s.mu is held.
func (s *Server) hasName(name string) bool {
	for k := range s.records {
		if strings.HasPrefix(k, name+"\t") {
			return true
		}
	}
	return false
}

// Resolver returns a *net.Resolver that asks only s.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}

// String names the server.
func (s *Server) String() string { return fmt.Sprintf("dnstest at %s", s.Addr) }
