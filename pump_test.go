package smtp

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The pump reads the replies already in its buffer in one go, but a reply
// it has read reaches the caller at once, not when the next one is whole.
func TestPump_HandsOverAReplyWithoutWaitingForTheNext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if s, err := ln.Accept(); err == nil {
			accepted <- s
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	defer s.Close()
	_, err = s.Write([]byte("220 ready\r\n"))
	require.NoError(t, err)
	c, err := NewClient(conn, "127.0.0.1")
	require.NoError(t, err)
	defer c.Close()

	c.startPump()
	defer c.stopPump()
	var xs [3]*Cmd
	for i := range xs {
		xs[i], err = c.queueLine(command{verb: "NOOP", expect: 250}, "NOOP")
		require.NoError(t, err)
	}
	require.NoError(t, c.flush())
	br := bufio.NewReader(s)
	for range xs {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "NOOP\r\n", line)
	}

	// Two whole replies and the start of the third, in one write.
	_, err = s.Write([]byte("250 one\r\n250-two\r\n250 two\r\n250 thr"))
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		_, err := c.next()
		if err == nil {
			_, err = c.next()
		}
		got <- err
	}()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the replies read were held back until the next one was whole")
	}
	assert.Equal(t, []string{"one"}, xs[0].Reply.Lines)
	assert.Equal(t, []string{"two", "two"}, xs[1].Reply.Lines)
	assert.False(t, c.ready(), "the third reply is not whole yet")

	_, err = s.Write([]byte("ee\r\n"))
	require.NoError(t, err)
	_, err = c.next()
	require.NoError(t, err)
	assert.Equal(t, []string{"three"}, xs[2].Reply.Lines)
}

// buffered reports a reply as in the buffer only once its last line is.
func TestReplyReader_BufferedMeansAWholeReply(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"250 ok", false},
		{"250 ok\r\n", true},
		{"250\r\n", true},
		{"25\n", true}, // malformed: read says so without waiting
		{"250-first\r\n", false},
		{"250-first\r\n250-second\r\n250 la", false},
		{"250-first\r\n250 last\r\n", true},
		{"250 one\r\n250-two", true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			rr := replyReader{r: bufio.NewReader(strings.NewReader(tt.in))}
			_, err := rr.r.Peek(len(tt.in)) // all of it in the buffer
			require.NoError(t, err)
			assert.Equal(t, tt.want, rr.buffered())
		})
	}
}
