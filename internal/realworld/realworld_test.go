package realworld

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The programs. Each is small, has no dependencies that matter, and
// depends on an exact error value from net/smtp.
var (
	// gomail's smtpSender.Send redials and retries when Mail returns
	// exactly io.EOF ("probably due to a timeout").
	gomailV2 = module{"gomail", "gopkg.in/gomail.v2", "v2.0.0-20160411212932-81ebce5c23df"}
	// email's Pool keeps a connection (after RSET) when an error is a
	// *textproto.Error and drops it on io.EOF and anything else.
	jwEmail = module{"email", "github.com/jordan-wright/email", "v4.0.1-0.20210109023952-943e75fe5223+incompatible"}
	// mail (github.com/go-mail/mail) sets Dialer.Timeout as a deadline on
	// its own net.Conn, and retries a Send whose MAIL failed with io.EOF
	// or a net.Error whose Timeout() is true.
	mailV2 = module{"mail", "gopkg.in/mail.v2", "v2.3.1"}
)

var modules = []module{gomailV2, jwEmail, mailV2}

// extensions are what the servers advertise: a usual Postfix set without
// STARTTLS and AUTH (the programs would check the server's certificate
// against the system roots).
var extensions = []string{"PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "CHUNKING"}

// idle is how long the servers of the idle-close scenarios wait after an
// accepted message before closing the connection; the programs stay idle
// four times as long.
const idle = 300 * time.Millisecond

var idleClosed = "* close: fault IdleCloseAfterMessage (idle " + idle.String() + ")"

func TestRealWorldGomailRetriesAfterIdleClose(t *testing.T) {
	t.Parallel()
	cfg := smtptest.Config{Extensions: extensions, Faults: smtptest.Faults{IdleCloseAfterMessage: idle}}
	runs := compare(t, gomailV2, cfg, result{
		Steps:     []step{{Step: "dial"}, {Step: "send 1"}, {Step: "send 2"}, {Step: "close"}},
		Delivered: map[string]int{"message 1": 1, "message 2": 1},
		Conns:     2, // message 2 went over a new connection
	}, "-wait", (4 * idle).String())
	for _, v := range variants {
		assert.Contains(t, runs[v].srv.Transcript(1), idleClosed, "%s build", v)
	}
}

func TestRealWorldEmailPoolReusesConnectionAfterRefusedRecipient(t *testing.T) {
	t.Parallel()
	cfg := smtptest.Config{Extensions: extensions}
	runs := compare(t, jwEmail, cfg, result{
		Steps: []step{
			{Step: "send 1"},
			{Step: "send 2", Err: &errInfo{Type: "*textproto.Error",
				Text: `550 "5.1.1 <reject@example.org>: no such user"`, Textproto: true}},
			{Step: "send 3"},
			{Step: "send 4"},
		},
		Delivered: map[string]int{"message 1": 1, "message 3": 1, "message 4": 1},
		Conns:     1, // the pool sent RSET and kept the connection
	}, "-scenario", "refused")
	assert.Contains(t, runs[published].srv.Transcript(1), "C: RSET")
}

func TestRealWorldEmailPoolReplacesIdleClosedConnection(t *testing.T) {
	t.Parallel()
	cfg := smtptest.Config{Extensions: extensions, Faults: smtptest.Faults{IdleCloseAfterMessage: idle}}
	runs := compare(t, jwEmail, cfg, result{
		Steps: []step{
			{Step: "send 1"},
			{Step: "send 2", Err: &errInfo{Type: "*errors.errorString", Text: "EOF", EOF: true}},
			{Step: "send 3"},
			{Step: "send 4"},
		},
		Delivered: map[string]int{"message 1": 1, "message 3": 1, "message 4": 1},
		Conns:     2, // the pool dropped the closed connection and dialled again
	}, "-scenario", "idle", "-wait", (4 * idle).String())
	for _, v := range variants {
		assert.Contains(t, runs[v].srv.Transcript(1), idleClosed, "%s build", v)
	}
}

// deadline is the mail program's Dialer.Timeout.
const deadline = 1500 * time.Millisecond

// assertNearDeadline checks that the step returned when the caller's
// deadline passed, not sooner and not minutes later.
func assertNearDeadline(t *testing.T, runs map[string]*run, stepName string) {
	t.Helper()
	for _, v := range variants {
		got := runs[v].elapsed[stepName]
		assert.GreaterOrEqual(t, got, deadline-100*time.Millisecond, "%s build: %s returned before the deadline", v, stepName)
		assert.LessOrEqual(t, got, deadline+2*time.Second, "%s build: %s returned long after the deadline", v, stepName)
	}
}

func TestRealWorldMailCallerDeadlineEndsStalledCommand(t *testing.T) {
	t.Parallel()
	cfg := smtptest.Config{Extensions: extensions, Faults: smtptest.Faults{Stall: "DATA"}}
	timeout := &errInfo{Type: "*net.OpError", Text: "read tcp 127.0.0.1:PORT->127.0.0.1:PORT: i/o timeout", Timeout: true}
	runs := compare(t, mailV2, cfg, result{
		Steps: []step{
			{Step: "dial"},
			{Step: "send 1", Err: timeout}, // DATA was never answered
			{Step: "close", Err: &errInfo{Type: "*net.OpError",
				Text: "write tcp 127.0.0.1:PORT->127.0.0.1:PORT: i/o timeout", Timeout: true}},
		},
		Delivered: map[string]int{},
		Conns:     1,
	}, "-timeout", deadline.String())
	assertNearDeadline(t, runs, "send 1")
}

func TestRealWorldMailRetriesAfterTimeout(t *testing.T) {
	t.Parallel()
	cfg := smtptest.Config{Extensions: extensions, ConnFaults: map[int]smtptest.Faults{1: {Stall: "MAIL"}}}
	runs := compare(t, mailV2, cfg, result{
		Steps:     []step{{Step: "dial"}, {Step: "send 1"}, {Step: "close"}},
		Delivered: map[string]int{"message 1": 1},
		Conns:     2, // MAIL timed out on the first; the message went over the second
	}, "-timeout", deadline.String())
	assertNearDeadline(t, runs, "send 1")
}

// TestRealWorldLibraryTestsPassWithSwappedImport runs each module's own
// tests (none needs the network; each suite takes seconds) as published and
// with the swapped import. go vet is off: it rejects email's example names
// as published.
func TestRealWorldLibraryTestsPassWithSwappedImport(t *testing.T) {
	requireRealWorld(t)
	t.Parallel()
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			src := download(t, m)
			for _, v := range variants {
				dir := filepath.Join(work(t, m.name+"-tests"), "module")
				copyModule(t, m, src, dir, v == swapped)
				out, err := goCmd(t, 2*time.Minute, dir, "test", "-count=1", "-vet=off", "./...")
				t.Logf("%s build: go test ./...:\n%s", v, out)
				if v == published {
					require.NoError(t, err, "the module's own tests fail as published")
				} else {
					assert.NoError(t, err, "the module's own tests fail with the swapped import")
				}
			}
		})
	}
}
