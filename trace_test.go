package smtp

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// traceLog records the commands a trace saw, each prefixed with the
// trace's name, in the order the hooks ran.
type traceLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *traceLog) trace(name string) *ClientTrace {
	return &ClientTrace{CommandSent: func(line string) {
		l.mu.Lock()
		l.lines = append(l.lines, name+" "+line)
		l.mu.Unlock()
	}}
}

func (l *traceLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// A trace that comes with the context traces that call only, its hooks
// running before those of a trace already in the context, which run
// before the Dialer's (as httptrace composes its hooks).
func TestWithClientTrace_TracesOneCall(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	var log traceLog
	c := dialTest(t, srv, &Dialer{Trace: log.trace("dialer")})
	log.take() // the dial's own commands

	ctx := WithClientTrace(context.Background(), log.trace("outer"))
	require.NoError(t, c.NoopContext(WithClientTrace(ctx, log.trace("inner"))))
	assert.Equal(t, []string{"inner NOOP", "outer NOOP", "dialer NOOP"}, log.take())

	require.NoError(t, c.NoopContext(ctx))
	assert.Equal(t, []string{"outer NOOP", "dialer NOOP"}, log.take())

	require.NoError(t, c.NoopContext(context.Background()))
	assert.Equal(t, []string{"dialer NOOP"}, log.take(), "the call's trace is gone after the call")

	// A call made within another (hello within Mail) runs each hook once.
	conn, err := net.Dial("tcp", srv.Addr)
	require.NoError(t, err)
	c2, err := NewClient(conn, "127.0.0.1")
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, c2.MailContext(WithClientTrace(context.Background(), log.trace("call")), "a@example.org"))
	assert.Equal(t, []string{"call EHLO localhost", "call MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8"}, log.take())
	assert.Nil(t, ContextClientTrace(context.Background()))
	assert.Same(t, ctx, WithClientTrace(ctx, nil))
}

// One Send of a Pool can be traced without tracing the Pool's connections.
func TestWithClientTrace_OneSendOfAPool(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := &Pool{Dialer: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}, MaxConns: 1}
	defer p.Close()
	env := &Envelope{From: "a@example.org", To: Recipients("b@example.com")}
	_, err := p.Send(context.Background(), srv.Addr, env, strings.NewReader("one\r\n"))
	require.NoError(t, err)
	var log traceLog
	_, err = p.Send(WithClientTrace(context.Background(), log.trace("send")), srv.Addr, env, strings.NewReader("two\r\n"))
	require.NoError(t, err)
	_, err = p.Send(context.Background(), srv.Addr, env, strings.NewReader("three\r\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"send MAIL FROM:<a@example.org> SIZE=5 BODY=8BITMIME", "send RCPT TO:<b@example.com>", "send DATA", "send ."},
		log.take(), "the second Send's commands, and nothing of the other Sends or of the dial")
	assert.Len(t, srv.Messages(), 3)
	assert.Equal(t, 1, srv.Conns(), "one connection, reused")
}

// A Courier's own hooks come with the context too.
func TestWithClientTrace_Courier(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterCommand: "DATA"}}})
	var attempts []int
	ctx := WithClientTrace(context.Background(), &ClientTrace{Connected: func(addr string, attempt int) { attempts = append(attempts, attempt) }})
	_, err := testCourier(nil).Send(ctx, []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("hi\r\n"))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, attempts)
}

// The trace sees each BDAT command as it went out, built in the Client's
// buffer, without its CRLF.
func TestTrace_SeesBDATLines(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpointChunk})
	var log traceLog
	c := dialTest(t, srv, &Dialer{Trace: log.trace("t"), ChunkSize: 4})
	log.take()
	_, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("12345678\r\n"))
	require.NoError(t, err)
	var bdat []string
	for _, l := range log.take() {
		if strings.HasPrefix(l, "t BDAT") {
			bdat = append(bdat, l)
		}
	}
	assert.Equal(t, []string{"t BDAT 4", "t BDAT 4", "t BDAT 2 LAST"}, bdat, "chunks of ChunkSize octets")
	require.Len(t, srv.Messages(), 1)
}
