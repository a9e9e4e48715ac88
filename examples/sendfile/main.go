// Command sendfile pushes one large message through a flaky link to one
// SMTP server and sees it through broken connections:
//
//	sendfile -server mx.example.net:25 -from ops@example.org \
//		-to archive@example.net,backup@example.net -file dump.eml \
//		-retry-delay 2m -attempts 10
//
// PATH holds the whole message, header and body, as it goes over SMTP; CRLF
// or LF line ends (LF is sent as CRLF). The file is read again from a resume
// point on each restart, so it must not change during the send.
//
// When the server offers CHECKPOINT (RFC 1845) and the connection breaks,
// sendfile waits -retry-delay, reconnects, and the server's "355 <offset>"
// reply tells it how much of the message the server already holds: only the
// rest is sent. Without CHECKPOINT the message is sent again in full. At most
// -attempts connections are tried in all. The default -retry-delay is the
// 30 minutes of RFC 1123 §5.3.1.1, which also gives the server time to
// notice the broken connection; set it lower for a link you know.
//
// Progress goes to standard error: a bar redrawn in place on a terminal, a
// line at every 25 % otherwise, and a line for each event (connection lost,
// reconnecting, resumed at an offset). On success standard output gets the
// server's reply and, last, a line such as
//
//	sent 41920251 octets for a 67108931-octet message (62.5 %), 1 restart
//
// that is, the canonical octets transmitted in all attempts against the
// message's canonical size, and the reconnections it took.
//
// Exit status:
//
//   - 0 only when the server answered 250 to the message and accepted every
//     recipient.
//   - 1 otherwise. That includes a partial refusal: when the server accepts
//     the message for some recipients and refuses others, the message is
//     delivered to the accepted ones (do not send it to them again), but not
//     to all that were asked for, so sendfile prints the server's reply and
//     lists the refused recipients on standard error, and exits 1. Exit
//     status 1 means the 250 was not seen, not that nothing was delivered:
//     without CHECKPOINT, a connection lost after the end of the message but
//     before its reply leaves a message the server may have queued.
//   - 2 for a usage error (and -h).
//
// sendfile uses only the public API of github.com/resmtp/smtp (a Courier,
// its Dialer and a ClientTrace), besides the module's own progress bar, so it
// is also the reference example of a resumable send.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/progress"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `usage: sendfile -server host:port -from ADDR -to ADDR[,ADDR...] -file PATH [flags]

Sends the message in PATH to the server and sees it through broken
connections: with a server that offers CHECKPOINT (RFC 1845) a restart
sends only what the server does not hold yet. Exit status: 0 once the
server accepted the message for every recipient, 1 otherwise, 2 for a
usage error.

flags:
`

// config is the parsed command line.
type config struct {
	server     string
	from       string
	to         []string
	file       string
	retryDelay time.Duration
	attempts   int
	localName  string
	tlsPolicy  smtp.TLSPolicy
	caFile     string
	timeout    time.Duration
}

// addrList is a flag that takes comma-separated addresses and may be
// repeated.
type addrList []string

func (l *addrList) String() string { return strings.Join(*l, ",") }

func (l *addrList) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return errors.New("empty address in the list")
		}
		*l = append(*l, a)
	}
	return nil
}

// parseFlags parses args. On a usage error it has printed the error and
// the usage to stderr.
func parseFlags(args []string, stderr io.Writer) (*config, bool) {
	fs := flag.NewFlagSet("sendfile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	var (
		cfg     config
		to      addrList
		tlsMode string
	)
	fs.StringVar(&cfg.server, "server", "", "the SMTP server to send to, as `host:port`")
	fs.StringVar(&cfg.from, "from", "", "the envelope sender `ADDR` (MAIL FROM); \"<>\" for the null reverse-path")
	fs.Var(&to, "to", "the recipients, `ADDR[,ADDR...]` (RCPT TO); may be repeated")
	fs.StringVar(&cfg.file, "file", "", "the message to send, header and body: the file at `PATH`")
	fs.DurationVar(&cfg.retryDelay, "retry-delay", 30*time.Minute, "the least wait before reconnecting (RFC 1123 §5.3.1.1)")
	fs.IntVar(&cfg.attempts, "attempts", 5, "the connections to try in all, the first included")
	fs.StringVar(&cfg.localName, "local-name", "", "the `name` sent with EHLO (default: the host's name if fully qualified, else its address literal)")
	fs.StringVar(&tlsMode, "tls", "opportunistic", "STARTTLS `policy`: opportunistic, required or none")
	fs.StringVar(&cfg.caFile, "ca", "", "trust the CA certificates in this PEM `FILE` (instead of the system's) for STARTTLS")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "give up after this long in all, waits included (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return nil, false // flag has printed the error and the usage
	}
	cfg.to = to
	bad := func(format string, a ...any) (*config, bool) {
		fmt.Fprintf(stderr, "sendfile: "+format+"\n", a...)
		fs.Usage()
		return nil, false
	}
	seen := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case cfg.server == "":
		return bad("-server is required")
	case !seen["from"]:
		return bad("-from is required (\"<>\" for the null reverse-path)")
	case len(cfg.to) == 0:
		return bad("-to is required")
	case cfg.file == "":
		return bad("-file is required")
	case cfg.retryDelay <= 0:
		return bad("-retry-delay must be positive, not %v", cfg.retryDelay)
	case cfg.attempts < 1:
		return bad("-attempts must be at least 1, not %d", cfg.attempts)
	case cfg.timeout < 0:
		return bad("-timeout must not be negative")
	}
	if host, port, err := net.SplitHostPort(cfg.server); err != nil || host == "" || port == "" {
		return bad("-server %q is not host:port", cfg.server)
	}
	if cfg.from == "<>" {
		cfg.from = ""
	}
	switch tlsMode {
	case "opportunistic":
		cfg.tlsPolicy = smtp.TLSOpportunistic
	case "required":
		cfg.tlsPolicy = smtp.TLSRequired
	case "none":
		cfg.tlsPolicy = smtp.TLSDisabled
	default:
		return bad("-tls %q: want opportunistic, required or none", tlsMode)
	}
	if cfg.caFile != "" && cfg.tlsPolicy == smtp.TLSDisabled {
		return bad("-ca has no use with -tls none")
	}
	return &cfg, true
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, ok := parseFlags(args, stderr)
	if !ok {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sendfile: "+format+"\n", a...)
		return 1
	}

	tlsConfig, err := loadCA(cfg.caFile)
	if err != nil {
		return fail("-ca: %v", err)
	}

	// An *os.File is seekable: on a restart the Courier seeks back to a
	// resume point instead of spooling the message.
	f, err := os.Open(cfg.file)
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("%v", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("%s is not a regular file", cfg.file)
	}

	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.timeout, fmt.Errorf("-timeout %v reached", cfg.timeout))
		defer cancel()
	}

	rep := &reporter{w: stderr, size: fi.Size(), attempts: cfg.attempts, delay: cfg.retryDelay}
	k := &smtp.Courier{
		Dialer: &smtp.Dialer{
			LocalName: cfg.localName,
			TLSPolicy: cfg.tlsPolicy,
			TLSConfig: tlsConfig,
			Trace:     rep.trace(),
		},
		RetryDelay: cfg.retryDelay,
		Attempts:   cfg.attempts,
	}
	env := &smtp.Envelope{From: cfg.from, To: smtp.Recipients(cfg.to...)}
	fmt.Fprintf(stderr, "sendfile: sending %s (%s) to %d recipient%s through %s\n",
		cfg.file, progress.Size(fi.Size()), len(cfg.to), plural(len(cfg.to)), cfg.server)

	res, err := k.Send(ctx, []string{cfg.server}, env, f)
	rep.endBar()
	return report(cfg, res, err, stdout, stderr, fail)
}

// report prints the outcome of the send and returns the exit status: 0 if
// every recipient got the message, else 1.
func report(cfg *config, res *smtp.Result, err error, stdout, stderr io.Writer, fail func(string, ...any) int) int {
	var re *smtp.RecipientsError
	switch {
	case err == nil && res != nil && res.Reply != nil:
		fmt.Fprintf(stdout, "%s: %d %s\n", cfg.server, res.Reply.Code, strings.Join(res.Reply.Lines, " "))
		fmt.Fprintln(stdout, summary(res))
		return 0
	case errors.As(err, &re) && re.Accepted > 0 && res != nil && res.Reply != nil:
		// Delivered to some: not what the operator asked for, and not to
		// be sent again to the others either.
		fmt.Fprintf(stderr, "sendfile: %s: %d %s\n", cfg.server, res.Reply.Code, strings.Join(res.Reply.Lines, " "))
		fmt.Fprintf(stderr, "sendfile: the message was accepted for %d of %d recipients; refused:\n", re.Accepted, re.Accepted+len(re.Refused))
		listRefused(stderr, re.Refused)
		fmt.Fprintf(stderr, "sendfile: not delivered to every recipient (do not send it again to the accepted ones)\n")
		return 1
	case errors.As(err, &re):
		fmt.Fprintf(stderr, "sendfile: every recipient was refused:\n")
		listRefused(stderr, re.Refused)
		return 1
	}
	if err == nil {
		err = errors.New("no reply to the message") // not expected from a Courier
	}
	if res != nil && (res.Transmitted > 0 || res.Restarts > 0) {
		return fail("not delivered: %v (%d octets transmitted, %d restart%s)", err, res.Transmitted, res.Restarts, plural(res.Restarts))
	}
	return fail("not delivered: %v", err)
}

// loadCA returns a TLS configuration that trusts the PEM certificates in
// file, or nil for no file (the system roots).
func loadCA(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// summary is the last line on success.
func summary(res *smtp.Result) string {
	pct := ""
	if res.Octets > 0 {
		pct = fmt.Sprintf(" (%.1f %%)", 100*float64(res.Transmitted)/float64(res.Octets))
	}
	return fmt.Sprintf("sent %d octets for a %d-octet message%s, %d restart%s",
		res.Transmitted, res.Octets, pct, res.Restarts, plural(res.Restarts))
}

func listRefused(w io.Writer, refused []smtp.RcptResult) {
	for _, r := range refused {
		var se *smtp.Error
		if errors.As(r.Err, &se) {
			fmt.Fprintf(w, "  <%s>: %d %s\n", r.Addr, se.Code, strings.ReplaceAll(se.Msg, "\n", " "))
		} else {
			fmt.Fprintf(w, "  <%s>: %v\n", r.Addr, r.Err)
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// reporter turns the Courier's trace into a progress bar and event lines on
// w. The Courier runs the hooks on the goroutine that called Send; the mutex
// only guards against a future change of that.
type reporter struct {
	mu        sync.Mutex
	w         io.Writer
	size      int64 // the file's size, for the bar if the trace has none
	attempts  int
	delay     time.Duration
	bar       *progress.Bar
	drawn     bool // the bar has drawn since it was last ended
	failed    int  // attempts failed so far
	connected bool // the current attempt got a connection
}

func (r *reporter) trace() *smtp.ClientTrace {
	return &smtp.ClientTrace{
		DataProgress: func(written, total int64) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.bar == nil {
				if total <= 0 {
					total = r.size
				}
				r.bar = progress.New(r.w, "sending", total)
			}
			r.bar.Set(written)
			r.drawn = true
		},
		Connected: func(addr string, attempt int) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.connected = true
			r.bar = nil // a new bar for each attempt, created with the first data
			if attempt > 1 {
				r.event("connected to %s again (attempt %d of %d)", addr, attempt, r.attempts)
			}
		},
		AttemptFailed: func(addr string, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.failed++
			if r.connected {
				r.event("connection to %s lost: %v", addr, err)
			} else {
				r.event("cannot connect to %s: %v", addr, err)
			}
			r.connected = false
			if r.failed < r.attempts {
				r.event("reconnecting in %v (attempt %d of %d)", r.delay, r.failed+1, r.attempts)
			}
		},
		Resumed: func(offset int64, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if err != nil {
				r.event("the server's offset %d cannot be right (%v): sending the whole message again", offset, err)
				return
			}
			pct := ""
			if r.size > 0 {
				pct = fmt.Sprintf(" (%.1f %%)", 100*float64(offset)/float64(r.size))
			}
			r.event("resumed at offset %d%s: the server holds the first %d octets", offset, pct, offset)
		},
	}
}

// event prints a line, ending the bar's line first. r.mu is held.
func (r *reporter) event(format string, a ...any) {
	r.endBarLocked()
	fmt.Fprintf(r.w, "sendfile: "+format+"\n", a...)
}

func (r *reporter) endBar() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endBarLocked()
}

func (r *reporter) endBarLocked() {
	if r.bar != nil && r.drawn {
		r.bar.Done()
	}
	r.drawn = false
}
