package smtptest

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaultCloseAfterCommand(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{CloseAfterCommand: "rcpt"}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c.expect(250) // earlier replies are flushed
	c.expectClosed()
	assert.Contains(t, s.Transcript(1), "* close: fault CloseAfterCommand RCPT")
}

func TestFaultCloseAfterCommandGreeting(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{CloseAfterCommand: "GREETING"}})
	c := dial(t, s)
	c.expectClosed()
}

func TestFaultCloseBeforeReply(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{CloseBeforeReply: "MAIL"}})
	c := ehlo(t, s)
	c.cmd("NOOP", "MAIL FROM:<a@x>")
	c.expect(250)
	c.expectClosed()
}

// A 421 override with CloseAfterReply: the reply arrives, then the end of
// the connection (RFC 5321 §3.8).
func TestFaultCloseAfterReply(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{CloseAfterReply: "RCPT", Reply: map[string]string{"RCPT": "421 4.3.2 shutting down"}}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>")
	c.expect(250)
	c.expect(421)
	c.expectClosed()
	assert.Contains(t, s.Transcript(1), "* close: fault CloseAfterReply RCPT")
}

func TestFaultCloseAfterDataOctetsOnlyOnChosenConnection(t *testing.T) {
	s := newTestServer(t, Config{ConnFaults: map[int]Faults{1: {CloseAfterDataOctets: 5}}})
	for i := 1; i <= 2; i++ {
		c := ehlo(t, s)
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.write("0123456789\r\n.\r\n")
		if i == 1 {
			c.expectClosed()
			assert.Contains(t, s.Transcript(1), "C: <data 5 octets, incomplete>")
		} else {
			c.expect(250)
		}
	}
	assert.Len(t, s.Messages(), 1)
}

func TestFaultCloseAfterDataOctetsDoesNotFireWhenDataEndsFirst(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{CloseAfterDataOctets: 8}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("abc\r\n.\r\n") // exactly 8 octets
	c.expect(250)
}

func TestFaultStallEndsAtClose(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{Stall: "DATA"}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expectSilence(200 * time.Millisecond)
	require.NoError(t, s.Close())
	c.expectClosed()
}

func TestFaultStallGreeting(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{Stall: "GREETING"}})
	c := dial(t, s)
	c.expectSilence(200 * time.Millisecond)
}

func TestFaultDelay(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"greeting", Config{Faults: Faults{Delay: map[string]time.Duration{"GREETING": 150 * time.Millisecond}}}},
		{"every reply", Config{ReplyDelay: 150 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			start := time.Now()
			dialGreeted(t, s)
			assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
		})
	}
	t.Run("per verb", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Delay: map[string]time.Duration{"noop": 150 * time.Millisecond}}})
		c := ehlo(t, s)
		start := time.Now()
		c.cmd("RSET")
		c.expect(250)
		assert.Less(t, time.Since(start), 150*time.Millisecond)
		start = time.Now()
		c.cmd("NOOP")
		c.expect(250)
		assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	})
}

func TestFaultReplyOverrides(t *testing.T) {
	t.Run("malformed multi-line EHLO is sent verbatim", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{
			"EHLO": "250-host\r\n250-PIPELINING\r\n250 SIZE nonsense",
		}}})
		c := dialGreeted(t, s)
		c.cmd("EHLO c")
		assert.Equal(t, "host\nPIPELINING\nSIZE nonsense", c.expect(250))
		c.cmd("MAIL FROM:<a@x>") // EHLO was still executed
		c.expect(250)
	})
	t.Run("raw garbage", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"NOOP": "2x0 what\r\n"}}})
		c := ehlo(t, s)
		c.cmd("NOOP")
		line, err := c.tp.ReadLine()
		require.NoError(t, err)
		assert.Equal(t, "2x0 what", line)
	})
	t.Run("rejecting RCPT does not add the recipient", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"RCPT": "550 5.7.1 nope"}}})
		c := ehlo(t, s)
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(550)
		c.expect(503)
	})
	t.Run("rejecting DATA skips the data phase", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"DATA": "451 4.3.0 busy"}}})
		c := ehlo(t, s)
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA", "NOOP")
		c.expect(250)
		c.expect(250)
		c.expect(451)
		c.expect(250)
	})
	t.Run("final reply failure stores nothing", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{".": "554 5.6.0 rejected"}}})
		c := ehlo(t, s)
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.write("x\r\n.\r\n")
		c.expect(554)
		assert.Empty(t, s.Messages())
		c.cmd("MAIL FROM:<a@x>") // the transaction was reset
		c.expect(250)
	})
	t.Run("final reply text replaced on success", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{".": "250 custom"}}})
		c := ehlo(t, s)
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.write("x\r\n.\r\n")
		assert.Equal(t, "custom", c.expect(250))
		assert.Len(t, s.Messages(), 1)
	})
	t.Run("greeting 554 then only QUIT", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"GREETING": "554 no service"}}})
		c := dial(t, s)
		c.expect(554)
		c.cmd("EHLO c")
		c.expect(503)
		c.cmd("QUIT")
		c.expect(221)
		c.expectClosed()
	})
	t.Run("greeting 421 closes", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"GREETING": "421 4.3.2 shutting down"}}})
		c := dial(t, s)
		c.expect(421)
		c.expectClosed()
	})
	t.Run("multi-line greeting", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"GREETING": "220-first\r\n220 second"}}})
		c := dial(t, s)
		assert.Equal(t, "first\nsecond", c.expect(220))
	})
	t.Run("empty reply sends nothing", func(t *testing.T) {
		s := newTestServer(t, Config{Faults: Faults{Reply: map[string]string{"NOOP": ""}}})
		c := ehlo(t, s)
		c.cmd("NOOP", "RSET")
		assert.Equal(t, "2.0.0 Ok", c.expect(250))
		c.expectSilence(100 * time.Millisecond)
	})
}

func TestHandlerOverridesSecondRecipientOnly(t *testing.T) {
	var n atomic.Int32
	s := newTestServer(t, Config{Handler: func(cmd Command) (string, bool) {
		if cmd.Verb == "RCPT" && n.Add(1) == 2 {
			assert.True(t, strings.HasPrefix(cmd.Line, "RCPT TO:"))
			assert.Equal(t, 1, cmd.Conn)
			return "452 4.5.3 too many recipients", true
		}
		return "", false
	}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<1@x>", "RCPT TO:<2@x>", "RCPT TO:<3@x>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(452)
	c.expect(250)
	c.expect(354)
	c.write(".\r\n")
	c.expect(250)
	assert.Equal(t, []string{"1@x", "3@x"}, s.Messages()[0].To)
}

func TestSetFaultsAppliesToLaterConnections(t *testing.T) {
	s := newTestServer(t, Config{})
	ehlo(t, s)
	s.SetFaults(Faults{Reply: map[string]string{"GREETING": "554 go away"}})
	c := dial(t, s)
	c.expect(554)
}

func TestFaultIdleCloseAfterMessage(t *testing.T) {
	const idle = 250 * time.Millisecond
	s := newTestServer(t, Config{Faults: Faults{IdleCloseAfterMessage: idle}})
	c := ehlo(t, s)
	send := func() {
		c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.write("hello\r\n.\r\n")
		c.expect(250)
	}
	c.expectSilence(2 * idle) // idle before any message: left open
	send()
	c.cmd("NOOP") // input within the period disarms the fault
	c.expect(250)
	c.expectSilence(2 * idle) // no message since: still open
	send()
	start := time.Now()
	c.expectClosed()
	assert.GreaterOrEqual(t, time.Since(start), idle/2)
	assert.Len(t, s.Messages(), 2)
	tr := s.Transcript(1)
	assert.Contains(t, tr, "* close: fault IdleCloseAfterMessage (idle 250ms)")
	assert.Equal(t, "* close: fault IdleCloseAfterMessage (idle 250ms)", tr[len(tr)-1])
}
