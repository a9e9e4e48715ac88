package smtptest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lhlo dials an LMTP server, reads the greeting and sends LHLO.
func lhlo(t *testing.T, s *Server) *tclient {
	c := dialGreeted(t, s)
	c.cmd("LHLO client.example")
	c.expect(250)
	return c
}

// expectLine reads one reply and checks "code text".
func (c *tclient) expectLine(want string) {
	c.t.Helper()
	code, msg := c.reply()
	require.Equal(c.t, want, strconv.Itoa(code)+" "+msg)
}

func TestLMTPGreetingLHLOAndEHLORefused(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true, Hostname: "lmtp.test"})
	c := dial(t, s)
	assert.Equal(t, "lmtp.test LMTP smtptest", c.expect(220))

	// RFC 2033 section 4.1: EHLO and HELO must not get a 2xx.
	c.cmd("EHLO client.example")
	assert.Equal(t, "5.5.1 this is an LMTP server, use LHLO", c.expect(500))
	c.cmd("HELO client.example")
	assert.Equal(t, "5.5.1 this is an LMTP server, use LHLO", c.expect(500))
	c.cmd("MAIL FROM:<a@example.org>")
	assert.Equal(t, "5.5.1 Error: send LHLO first", c.expect(503))
	c.cmd("LHLO")
	assert.Equal(t, "5.5.4 Syntax: LHLO hostname", c.expect(501))

	// LHLO answers like EHLO; CHECKPOINT is not combined with LMTP.
	c.cmd("LHLO client.example")
	var want []string
	for _, e := range DefaultExtensions() {
		if e != "CHECKPOINT" {
			want = append(want, e)
		}
	}
	assert.Equal(t, append([]string{"lmtp.test"}, want...), strings.Split(c.expect(250), "\n"))
	c.cmd("MAIL FROM:<a@example.org> TRANSID=<1@example.org>")
	assert.Equal(t, "5.5.4 Unsupported parameter TRANSID", c.expect(555))
	c.cmd("MAIL FROM:<>", "RCPT TO:<x@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("hi\r\n.\r\nQUIT\r\n")
	c.expectLine("250 2.1.5 <x@example.org> delivered")
	c.expect(221)
	c.expectClosed()
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "client.example", msgs[0].Helo)
}

func TestSMTPServerDoesNotKnowLHLO(t *testing.T) {
	s := newTestServer(t, Config{})
	c := dial(t, s)
	assert.Equal(t, DefaultHostname+" ESMTP smtptest", c.expect(220))
	c.cmd("LHLO client.example")
	assert.Equal(t, "5.5.2 Error: command not recognized", c.expect(500))
	c.cmd("EHLO client.example")
	c.expect(250)
}

func TestLMTPPipelinedDataGetsOneReplyPerRecipient(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true})
	c := lhlo(t, s)
	require.Equal(t, 2, s.Flushes(1), "greeting + LHLO")

	// Everything in one write: envelope, DATA, the data and its terminator.
	c.write("MAIL FROM:<s@example.org>\r\n" +
		"RCPT TO:<a@example.org> NOTIFY=NEVER\r\n" +
		"RCPT TO:<lmtpfail.b@example.org>\r\n" +
		"RCPT TO:<c@example.org>\r\n" +
		"DATA\r\n" +
		"Subject: x\r\n\r\n..dot\r\n.\r\n")
	c.expectLine("250 2.1.0 Ok")
	c.expectLine("250 2.1.5 Ok")
	c.expectLine("250 2.1.5 Ok")
	c.expectLine("250 2.1.5 Ok")
	c.expect(354)
	// RFC 2033 section 4.2: one reply per successful RCPT, in RCPT order.
	c.expectLine("250 2.1.5 <a@example.org> delivered")
	c.expectLine("452 4.2.2 <lmtpfail.b@example.org> mailbox full")
	c.expectLine("250 2.1.5 <c@example.org> delivered")
	assert.Equal(t, 3, s.Flushes(1), "one turnaround for the whole transaction")

	c.cmd("NOOP")
	c.expect(250)

	msgs := s.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "s@example.org", m.From)
	assert.Equal(t, []string{"a@example.org", "c@example.org"}, m.To)
	assert.Equal(t, [][]string{{"NOTIFY=NEVER"}, nil}, m.RcptParams)
	assert.Equal(t, "Subject: x\r\n\r\n.dot\r\n", string(m.Data))
	assert.Equal(t, "DATA", m.Via)
	assert.Equal(t, "Q1", m.QueueID)
	assert.Equal(t, []string{
		"250 2.1.5 <a@example.org> delivered",
		"452 4.2.2 <lmtpfail.b@example.org> mailbox full",
		"250 2.1.5 <c@example.org> delivered",
	}, m.LMTPReplies)
}

func TestLMTPRecipientsRejectedAtRCPTGetNoDataReply(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true})
	c := lhlo(t, s)
	c.cmd("MAIL FROM:<s@example.org>",
		"RCPT TO:<reject@example.org>",
		"RCPT TO:<LmtpReject@example.org>",
		"RCPT TO:<d@example.org>",
		"RCPT TO:<d@example.org>",
		"DATA")
	c.expect(250)
	c.expect(550)
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("hi\r\n.\r\nNOOP\r\n")
	c.expectLine("550 5.1.1 <LmtpReject@example.org> mailbox unavailable")
	// Duplicates get one reply each (RFC 2033 section 4.2).
	c.expectLine("250 2.1.5 <d@example.org> delivered")
	c.expectLine("250 2.1.5 <d@example.org> delivered")
	c.expectLine("250 2.0.0 Ok")
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{"d@example.org", "d@example.org"}, msgs[0].To)
	assert.Len(t, msgs[0].LMTPReplies, 3)
}

func TestLMTPAllRecipientsFailingStoresNothing(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true})
	c := lhlo(t, s)
	c.cmd("MAIL FROM:<s@example.org>", "RCPT TO:<lmtpfail@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("hi\r\n.\r\n")
	c.expect(452)
	assert.Empty(t, s.Messages())
}

func TestLMTPBDATLastGetsOneReplyPerRecipient(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true})
	c := lhlo(t, s)
	c.write("MAIL FROM:<s@example.org>\r\n" +
		"RCPT TO:<a@example.org>\r\n" +
		"RCPT TO:<lmtpreject@example.org>\r\n" +
		"RCPT TO:<lmtpfail@example.org>\r\n" +
		"RCPT TO:<b@example.org>\r\n" +
		"BDAT 5\r\nhello" +
		"BDAT 8 LAST\r\n world\r\n")
	for range 5 {
		c.expect(250)
	}
	// BDAT without LAST still gets exactly one reply (RFC 2033 section 4.3).
	c.expectLine("250 2.0.0 5 octets received")
	c.expectLine("250 2.1.5 <a@example.org> delivered")
	c.expectLine("550 5.1.1 <lmtpreject@example.org> mailbox unavailable")
	c.expectLine("452 4.2.2 <lmtpfail@example.org> mailbox full")
	c.expectLine("250 2.1.5 <b@example.org> delivered")
	assert.Equal(t, 3, s.Flushes(1))

	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{"a@example.org", "b@example.org"}, msgs[0].To)
	assert.Equal(t, "hello world\r\n", string(msgs[0].Data))
	assert.Equal(t, "BDAT", msgs[0].Via)
	assert.Len(t, msgs[0].LMTPReplies, 4)
}

func TestLMTPNoValidRecipient(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true})
	c := lhlo(t, s)

	// RFC 2033 section 4.2: DATA without a successful RCPT fails with 503.
	c.cmd("MAIL FROM:<s@example.org>", "RCPT TO:<reject@example.org>", "DATA")
	c.expect(250)
	c.expect(550)
	c.expectLine("503 5.5.1 Error: no valid recipients")
	c.cmd("RSET", "MAIL FROM:<s@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expectLine("503 5.5.1 Error: need RCPT command")

	// RFC 2033 section 4.3: BDAT LAST then returns zero replies; a chunk
	// without LAST still gets one (failing) reply.
	c.write("RSET\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<temp@example.org>\r\n" +
		"BDAT 3\r\nabc" + "BDAT 3 LAST\r\ndef" + "NOOP\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(450)
	c.expectLine("503 5.5.1 Error: no valid recipients")
	c.expectLine("250 2.0.0 Ok") // NOOP: nothing for BDAT LAST
	// The transaction ended with BDAT LAST.
	c.cmd("RCPT TO:<a@example.org>")
	c.expect(503)
	assert.Empty(t, s.Messages())
}

func TestLMTPMessageTooBigFailsPerRecipient(t *testing.T) {
	s := newTestServer(t, Config{LMTP: true, MaxMessageSize: 10})
	c := lhlo(t, s)
	c.cmd("MAIL FROM:<s@example.org>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write(strings.Repeat("x", 20) + "\r\n.\r\n")
	c.expectLine("552 5.3.4 Error: message exceeds fixed maximum message size")
	c.expectLine("552 5.3.4 Error: message exceeds fixed maximum message size")

	c.write("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n" +
		"BDAT 20 LAST\r\n" + strings.Repeat("y", 20) + "NOOP\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(552)
	c.expect(552)
	c.expectLine("250 2.0.0 Ok")
	assert.Empty(t, s.Messages())
}

func TestLMTPHandlerOverridesRecipientReplyAndPartialClose(t *testing.T) {
	s := newTestServer(t, Config{
		LMTP: true,
		Handler: func(cmd Command) (string, bool) {
			if cmd.Verb == "LMTP" && cmd.Line == "x@example.org" {
				return "451 4.3.0 x deferred", true
			}
			return "", false
		},
		Faults: Faults{LMTPCloseAfterReplies: 2, Delay: map[string]time.Duration{"lmtp": time.Millisecond}},
	})
	c := lhlo(t, s)
	c.cmd("MAIL FROM:<s@example.org>", "RCPT TO:<a@example.org>", "RCPT TO:<x@example.org>", "RCPT TO:<b@example.org>", "DATA")
	for range 4 {
		c.expect(250)
	}
	c.expect(354)
	c.write("hi\r\n.\r\n")
	c.expectLine("250 2.1.5 <a@example.org> delivered")
	c.expectLine("451 4.3.0 x deferred")
	c.expectClosed()

	msgs := s.Messages()
	require.Len(t, msgs, 1)
	// b was delivered although the client never saw its reply.
	assert.Equal(t, []string{"a@example.org", "b@example.org"}, msgs[0].To)
	assert.Equal(t, "451 4.3.0 x deferred", msgs[0].LMTPReplies[1])
	// greeting, LHLO, envelope+354, first reply (flushed before the
	// delayed second one), second reply (flushed before closing).
	assert.Equal(t, 5, s.Flushes(1))
}
