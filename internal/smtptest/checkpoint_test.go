package smtptest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const transID = "<12345@client.example>"

// startCheckpointTx opens a connection and starts a CHECKPOINT transaction,
// returning the reply to MAIL.
func startCheckpointTx(t *testing.T, s *Server) (*tclient, int, string) {
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<ned@client.example> TRANSID="+transID, "RCPT TO:<mrose@x>", "RCPT TO:<other@x>")
	code, msg := c.reply()
	if code == 250 {
		c.expect(250)
		c.expect(250)
	} else {
		c.reply()
		c.reply()
	}
	return c, code, msg
}

// offset355 parses "355 <offset> ..." reply text.
func offset355(t *testing.T, msg string) int {
	f := strings.Fields(msg)
	require.NotEmpty(t, f)
	n, err := strconv.Atoi(f[0])
	require.NoError(t, err)
	return n
}

func TestCheckpointResumeAfterCutYieldsOneIdenticalMessage(t *testing.T) {
	msg := testMessage(50000)
	wire := stuff(msg)
	tests := []struct {
		name string
		via  string
		cut  int64
	}{
		{"DATA cut after one octet", "DATA", 1},
		{"DATA cut mid-line", "DATA", 1000},
		{"DATA cut after a stuffed dot", "DATA", int64(strings.Index(wire, "\r\n..") + 3)},
		{"DATA cut late", "DATA", int64(len(wire) - 10)},
		{"DATA cut before the terminator's LF", "DATA", int64(len(wire) - 1)},
		{"BDAT cut in first chunk", "BDAT", 777},
		{"BDAT cut at a chunk boundary", "BDAT", 20000},
		{"BDAT cut in last chunk", "BDAT", 40001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{ConnFaults: map[int]Faults{1: {CloseAfterDataOctets: tt.cut}}})

			c, code, _ := startCheckpointTx(t, s)
			require.Equal(t, 250, code)
			if tt.via == "DATA" {
				c.cmd("DATA")
				c.expect(354)
				c.nc.Write([]byte(wire)) // may fail once the server cuts
			} else {
				var b strings.Builder
				for i := 0; i < len(msg); i += 20000 {
					end := min(i+20000, len(msg))
					last := ""
					if end == len(msg) {
						last = " LAST"
					}
					fmt.Fprintf(&b, "BDAT %d%s\r\n%s", end-i, last, msg[i:end])
				}
				c.nc.Write([]byte(b.String()))
			}
			drainUntilClosed(t, c)
			assert.Empty(t, s.Messages())

			cp, ok := s.Checkpoints().Lookup(transID)
			require.True(t, ok)
			assert.True(t, cp.DataStarted)
			assert.False(t, cp.Complete)
			assert.True(t, bytes.HasPrefix(msg, cp.Data), "stored octets are a prefix of the message")

			// Reconnect: the server announces how much it already has.
			c2, code, text := startCheckpointTx(t, s)
			require.Equal(t, 355, code, text)
			off := offset355(t, text)
			assert.Contains(t, text, "octet-offset is the transaction offset")
			if tt.via == "DATA" {
				assert.Equal(t, lineStart(msg[:off]), off, "DATA offsets are at a line start")
				assert.LessOrEqual(t, int64(off), tt.cut)
				c2.cmd("DATA")
				assert.Contains(t, c2.expect(354), strconv.Itoa(off))
				c2.write(stuff(msg[off:]))
			} else {
				assert.Equal(t, int(tt.cut), off, "BDAT offsets count every received octet")
				c2.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-off, msg[off:]))
			}
			c2.expect(250)
			c2.cmd("QUIT")
			c2.expect(221)

			msgs := s.Messages()
			require.Len(t, msgs, 1)
			assert.True(t, bytes.Equal(msg, msgs[0].Data), "byte-identical")
			assert.Equal(t, []string{"mrose@x", "other@x"}, msgs[0].To)
			assert.Equal(t, "ned@client.example", msgs[0].From)
			assert.Equal(t, transID, msgs[0].TransID)
			assert.Equal(t, []int64{int64(off)}, msgs[0].ResumedAt)
			assert.Equal(t, 2, msgs[0].ConnIndex)
			assert.Equal(t, 0, s.Checkpoints().Len(), "QUIT ends the transaction")
		})
	}
}

func TestCheckpointCompletedButReplyLostIsNotDuplicated(t *testing.T) {
	for _, via := range []string{"DATA", "BDAT"} {
		t.Run(via, func(t *testing.T) {
			s := newTestServer(t, Config{ConnFaults: map[int]Faults{1: {CloseBeforeReply: "."}}})
			msg := testMessage(3000)

			c, _, _ := startCheckpointTx(t, s)
			if via == "DATA" {
				c.cmd("DATA")
				c.expect(354)
				c.write(stuff(msg))
			} else {
				c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
			}
			drainUntilClosed(t, c) // the final 250 never arrives
			require.Len(t, s.Messages(), 1)
			qid := s.Messages()[0].QueueID
			cp, ok := s.Checkpoints().Lookup(transID)
			require.True(t, ok, "state kept until the client is known to have seen completion")
			assert.True(t, cp.Complete)

			c2, code, text := startCheckpointTx(t, s)
			require.Equal(t, 355, code)
			assert.Equal(t, len(msg), offset355(t, text))
			if via == "DATA" {
				c2.cmd("DATA")
				c2.expect(354)
				c2.write(".\r\n")
			} else {
				c2.cmd("BDAT 0 LAST")
			}
			assert.Equal(t, "2.0.0 Ok: queued as "+qid, c2.expect(250))
			require.Len(t, s.Messages(), 1, "exactly one copy")

			// Pipelined next transaction: a new MAIL releases the old state.
			c2.cmd("MAIL FROM:<a@x>")
			c2.expect(250)
			assert.Equal(t, 0, s.Checkpoints().Len())
		})
	}
}

func TestCheckpointCompletedTransactionRejectsExtraData(t *testing.T) {
	s := newTestServer(t, Config{ConnFaults: map[int]Faults{1: {CloseBeforeReply: "."}}})
	c, _, _ := startCheckpointTx(t, s)
	c.cmd("DATA")
	c.expect(354)
	c.write("hello\r\n.\r\n")
	drainUntilClosed(t, c)

	c2, code, _ := startCheckpointTx(t, s)
	require.Equal(t, 355, code)
	c2.cmd("DATA")
	c2.expect(354)
	c2.write("hello\r\n.\r\n") // a client that ignored the offset
	c2.expect(554)
	assert.Len(t, s.Messages(), 1)
}

func TestCheckpointCloseAfterEndOfDataKeepsAllOctets(t *testing.T) {
	s := newTestServer(t, Config{ConnFaults: map[int]Faults{1: {CloseAfterCommand: "."}}})
	c, _, _ := startCheckpointTx(t, s)
	c.cmd("DATA")
	c.expect(354)
	c.write("a\r\n..b\r\n.\r\n")
	drainUntilClosed(t, c)
	assert.Empty(t, s.Messages())

	c2, code, text := startCheckpointTx(t, s)
	require.Equal(t, 355, code)
	assert.Equal(t, 7, offset355(t, text))
	c2.cmd("DATA")
	c2.expect(354)
	c2.write(".\r\n")
	c2.expect(250)
	require.Len(t, s.Messages(), 1)
	assert.Equal(t, "a\r\n.b\r\n", string(s.Messages()[0].Data))
}

func TestCheckpointStateLifetime(t *testing.T) {
	tests := []struct {
		name string
		// after a started transaction with data sent (DATA, cut by the
		// client itself or completed), run these lines on the same
		// connection
		complete bool
		then     []string
		kept     bool
	}{
		{"RSET aborts", false, []string{"RSET"}, false},
		{"QUIT after completion", true, []string{"QUIT"}, false},
		{"EHLO after completion", true, []string{"EHLO again"}, false},
		{"new MAIL after completion", true, []string{"MAIL FROM:<z@x>"}, false},
		{"connection dropped after completion", true, nil, true},
		{"NOOP after completion", true, []string{"NOOP"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			c, _, _ := startCheckpointTx(t, s)
			if tt.complete {
				c.cmd("DATA")
				c.expect(354)
				c.write("x\r\n.\r\n")
				c.expect(250)
			}
			for _, l := range tt.then {
				c.cmd(l)
				c.reply()
			}
			c.nc.Close()
			require.NoError(t, s.Close())
			assert.Equal(t, tt.kept, s.Checkpoints().Len() == 1)
		})
	}
}

func TestCheckpointUnknownOrUnstartedTransIDStartsFresh(t *testing.T) {
	s := newTestServer(t, Config{})
	c, code, _ := startCheckpointTx(t, s)
	require.Equal(t, 250, code)
	c.nc.Close() // dropped before any data: nothing to resume

	c2, code, _ := startCheckpointTx(t, s)
	require.Equal(t, 250, code)
	c2.cmd("DATA")
	c2.expect(354)
	c2.write("y\r\n.\r\n")
	c2.expect(250)
	require.Len(t, s.Messages(), 1)
	assert.Empty(t, s.Messages()[0].ResumedAt)
}

func TestCheckpointSurvivesServerRestartWithSharedStore(t *testing.T) {
	msg := testMessage(10000)
	store := NewCheckpointStore()
	s1 := newTestServer(t, Config{Checkpoints: store, Faults: Faults{CloseAfterDataOctets: 5000}})
	c, _, _ := startCheckpointTx(t, s1)
	c.cmd("DATA")
	c.expect(354)
	c.nc.Write([]byte(stuff(msg)))
	drainUntilClosed(t, c)
	require.NoError(t, s1.Close())

	t.Run("persistent store", func(t *testing.T) {
		s2 := newTestServer(t, Config{Checkpoints: store})
		c2, code, text := startCheckpointTx(t, s2)
		require.Equal(t, 355, code)
		off := offset355(t, text)
		assert.Greater(t, off, 4000)
		c2.cmd("DATA")
		c2.expect(354)
		c2.write(stuff(msg[off:]))
		c2.expect(250)
		require.Len(t, s2.Messages(), 1)
		assert.Equal(t, msg, s2.Messages()[0].Data)
	})
	t.Run("restart without persistence", func(t *testing.T) {
		s3 := newTestServer(t, Config{})
		_, code, _ := startCheckpointTx(t, s3)
		assert.Equal(t, 250, code)
	})
	t.Run("Forget", func(t *testing.T) {
		s4 := newTestServer(t, Config{Checkpoints: NewCheckpointStore(), Faults: Faults{CloseAfterDataOctets: 10}})
		c, _, _ := startCheckpointTx(t, s4)
		c.cmd("DATA")
		c.expect(354)
		c.nc.Write([]byte(stuff(msg)))
		drainUntilClosed(t, c)
		require.Equal(t, 1, s4.Checkpoints().Len())
		s4.Checkpoints().Forget()
		s4.SetFaults(Faults{})
		_, code, _ := startCheckpointTx(t, s4)
		assert.Equal(t, 250, code)
	})
}

func TestCheckpointClientSideDisconnectThenResume(t *testing.T) {
	// The client drops the connection itself mid-DATA and reconnects at
	// once; whatever the server had read is offered for resumption and the
	// old connection can no longer add to it.
	msg := testMessage(200000)
	s := newTestServer(t, Config{})
	c, _, _ := startCheckpointTx(t, s)
	c.cmd("DATA")
	c.expect(354)
	wire := stuff(msg)
	c.write(wire[:len(wire)/2])
	c.nc.Close()

	c2, code, text := startCheckpointTx(t, s)
	var off int
	if code == 355 {
		off = offset355(t, text)
	} else {
		require.Equal(t, 250, code, "server had not stored anything yet")
	}
	c2.cmd("DATA")
	c2.expect(354)
	c2.write(stuff(msg[off:]))
	c2.expect(250)
	require.Len(t, s.Messages(), 1)
	assert.Equal(t, msg, s.Messages()[0].Data)
}

// Spans log which connection worked on which transaction and when: a
// second connection that takes a TRANSID over while the first is still
// open cuts it, and the first's span says so.
func TestSpansShowTwoConnectionsOnOneTransID(t *testing.T) {
	s := newTestServer(t, Config{})
	a, code, _ := startCheckpointTx(t, s)
	require.Equal(t, 250, code)
	a.cmd("DATA")
	a.expect(354)
	a.write("line one\r\n")
	time.Sleep(20 * time.Millisecond)
	b, code, _ := startCheckpointTx(t, s) // takes the transaction over from a
	require.Equal(t, 355, code)
	a.expectClosed()
	b.cmd("RSET")
	b.expect(250)
	b.cmd("QUIT")
	b.expect(221)
	b.expectClosed()

	c := ehlo(t, s)
	c.cmd("MAIL FROM:<x@y>")
	c.expect(250)
	spans := s.Spans()
	require.Len(t, spans, 3)
	assert.Equal(t, []int{1, 2, 3}, []int{spans[0].Conn, spans[1].Conn, spans[2].Conn})
	assert.Equal(t, []string{transID, transID, ""}, []string{spans[0].TransID, spans[1].TransID, spans[2].TransID})
	assert.Equal(t, []bool{true, false, false}, []bool{spans[0].Aborted, spans[1].Aborted, spans[2].Aborted}, "a was cut by b's takeover")
	assert.True(t, spans[0].Start.Before(spans[0].End), "a's data extends its span")
	assert.True(t, spans[0].End.Before(spans[1].Start))
	assert.True(t, spans[1].End.Before(spans[2].Start))
}
