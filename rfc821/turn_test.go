package rfc821

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// RFC 821 §3.8: "To refuse to change roles the receiver sends the 502
// reply"; the Client stays the sender.
func TestTurn_Refused(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	r, err := Turn(ctx, c)
	assert.Nil(t, r)
	assert.ErrorIs(t, err, ErrTurnRefused)
	assert.Equal(t, 502, historicCode(t, err))
	require.NoError(t, c.NoopContext(ctx), "still the sender")

	// 503 (TURN within a transaction) is an *Error, not a refusal.
	srv = newTestServer(t, smtptest.Config{Turn: &smtptest.Turn{}})
	c = dialTest(t, srv, nil)
	require.NoError(t, c.MailContext(ctx, "a@example.org"))
	_, err = Turn(ctx, c)
	assert.Equal(t, 503, historicCode(t, err))
	assert.NotErrorIs(t, err, ErrTurnRefused)
}

// turnLog waits for the server to finish its turn as the sender (its last
// step is logged once it has read the reply to QUIT) and returns the log.
func turnLog(t *testing.T, srv *smtptest.Server) []smtptest.TurnStep {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range srv.Transcript(1) {
			if strings.HasPrefix(l, "* close") {
				return srv.TurnLog(1)
			}
		}
		require.False(t, time.Now().After(deadline), "the server did not close the connection")
		time.Sleep(5 * time.Millisecond)
	}
}

// turnRecorder is a TurnHandler that keeps what it was given.
type turnRecorder struct {
	hello  []string
	from   []string
	to     []string
	data   []string
	resets int
	refuse map[string]error // by address, for Rcpt
	dataFn func(io.Reader) error
}

func (h *turnRecorder) Hello(d string) error { h.hello = append(h.hello, d); return nil }
func (h *turnRecorder) Reset()               { h.resets++ }
func (h *turnRecorder) Mail(from string) error {
	h.from = append(h.from, from)
	return nil
}

func (h *turnRecorder) Rcpt(to string) error {
	h.to = append(h.to, to)
	return h.refuse[to]
}

func (h *turnRecorder) Data(r io.Reader) error {
	if h.dataFn != nil {
		return h.dataFn(r)
	}
	b, err := io.ReadAll(r)
	h.data = append(h.data, string(b))
	return err
}

// RFC 821 §3.8 and §4.1.1: on 250 the Client greets with 220 and receives
// the server's transaction on the same connection: HELO, MAIL, RCPT (one
// refused by the handler), DATA with dot-stuffing removed, QUIT.
func TestTurn_ReceivesATransaction(t *testing.T) {
	msg := "Subject: turned\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line without CRLF"
	srv := newTestServer(t, smtptest.Config{
		Extensions: []string{"PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN"},
		Users:      map[string]string{"me": "secret"},
		Turn: &smtptest.Turn{
			Helo:     "mx.example.net",
			Commands: []string{"NOOP", "VRFY x", "HELP", "EXPN list", "SAML FROM:<a@b>", "TURN", "XYZZY", "RCPT TO:<a@b>", "DATA", "MAIL FROM:<a@b> SIZE=10", "RSET"},
			From:     "@mx.example.net:sender@example.net",
			To:       []string{"me@client.example", "other@elsewhere.example", "you@client.example"},
			Data:     msg,
		},
	})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	require.NoError(t, c.Auth(smtp.PlainAuth("", "me", "secret", "127.0.0.1")), "authenticate before TURN")
	recv, err := Turn(ctx, c)
	require.NoError(t, err)
	assert.Empty(t, recv.Hostname, "the caller's to set")
	recv.Hostname = "client.example"

	h := &turnRecorder{refuse: map[string]error{
		"other@elsewhere.example": &smtp.Error{Code: 550, Msg: "5.7.1 not a domain of mine"},
	}}
	require.NoError(t, recv.Serve(ctx, h))
	assert.Equal(t, []string{"mx.example.net"}, h.hello)
	assert.Equal(t, []string{"@mx.example.net:sender@example.net"}, h.from)
	assert.Equal(t, []string{"me@client.example", "other@elsewhere.example", "you@client.example"}, h.to)
	assert.Equal(t, []string{"Subject: turned\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line without CRLF\r\n"}, h.data)
	assert.Equal(t, 0, h.resets, "the transaction completed")

	assert.Equal(t, []smtptest.TurnStep{
		{Command: "", Reply: "220 client.example Service ready"},
		{Command: "HELO mx.example.net", Reply: "250 client.example"},
		{Command: "NOOP", Reply: "250 OK"},
		{Command: "VRFY x", Reply: "252 Cannot VRFY user, but will accept message and attempt delivery"},
		{Command: "HELP", Reply: "214 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"},
		{Command: "EXPN list", Reply: "502 Command not implemented"},
		{Command: "SAML FROM:<a@b>", Reply: "502 Command not implemented"},
		{Command: "TURN", Reply: "502 TURN refused: the roles change only once"},
		{Command: "XYZZY", Reply: "500 Command not recognized"},
		{Command: "RCPT TO:<a@b>", Reply: "503 Need MAIL command"},
		{Command: "DATA", Reply: "503 Need MAIL and RCPT commands"},
		{Command: "MAIL FROM:<a@b> SIZE=10", Reply: "555 No parameters are supported"},
		{Command: "RSET", Reply: "250 OK"},
		{Command: "MAIL FROM:<@mx.example.net:sender@example.net>", Reply: "250 OK"},
		{Command: "RCPT TO:<me@client.example>", Reply: "250 OK"},
		{Command: "RCPT TO:<other@elsewhere.example>", Reply: "550 5.7.1 not a domain of mine"},
		{Command: "RCPT TO:<you@client.example>", Reply: "250 OK"},
		{Command: "DATA", Reply: "354 Start mail input; end with <CRLF>.<CRLF>"},
		{Command: ".", Reply: "250 OK"},
		{Command: "QUIT", Reply: "221 client.example Service closing transmission channel"},
	}, turnLog(t, srv))

	// The Client is the receiver now, and the connection is closed.
	assert.ErrorIs(t, c.NoopContext(ctx), smtp.ErrClosed)
	assert.Error(t, recv.Serve(ctx, h), "Serve runs once")
}

// The handler's verdict on the data: an *Error is sent as it is (lines
// included), any other error as 451; a handler that reads nothing still
// gets the data drained.
func TestTurn_DataVerdicts(t *testing.T) {
	for _, tt := range []struct {
		name string
		fn   func(io.Reader) error
		want string
	}{
		{"refused", func(io.Reader) error { return &smtp.Error{Code: 554, Msg: "5.6.0 no thanks\nreally"} }, "554-5.6.0 no thanks\n554 really"},
		{"local error", func(io.Reader) error { return errors.New("disk full") }, "451 Requested action aborted: local error in processing"},
		{"3yz is no verdict", func(io.Reader) error { return &smtp.Error{Code: 354} }, "451 Requested action aborted: local error in processing"},
		{"accepted with text", func(r io.Reader) error { io.CopyN(io.Discard, r, 3); return &smtp.Error{Code: 250, Msg: "queued as 7"} }, "250 queued as 7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Turn: &smtptest.Turn{From: "a@b", To: []string{"c@d"}, Data: "x\r\n" + strings.Repeat(".y\r\n", 5000)}})
			c := dialTest(t, srv, nil)
			recv, err := Turn(context.Background(), c)
			require.NoError(t, err)
			require.NoError(t, recv.Serve(context.Background(), TurnFuncs{OnData: tt.fn}))
			log := turnLog(t, srv)
			require.Len(t, log, 7)
			assert.Equal(t, smtptest.TurnStep{Command: ".", Reply: tt.want}, log[5])
			assert.Equal(t, "QUIT", log[6].Command)
		})
	}
}

// A refused MAIL, a refused HELO (the optional Hello), and a transaction
// abandoned by the peer reaching Reset.
func TestTurn_RefusalsAndReset(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Turn: &smtptest.Turn{
		Commands: []string{"MAIL FROM:<x@y>", "RCPT TO:<reject@y>", "RSET", "NOOP " + strings.Repeat("x", 2000)},
		From:     "spam@example.net", To: []string{"a@b"},
	}})
	c := dialTest(t, srv, nil)
	recv, err := Turn(context.Background(), c)
	require.NoError(t, err)
	resets := 0
	h := &turnResetHandler{TurnFuncs: TurnFuncs{
		OnMail: func(from string) error {
			if strings.HasPrefix(from, "spam") {
				return &smtp.Error{Code: 550, Msg: "go away"}
			}
			return nil
		},
		OnRcpt: func(to string) error { return &smtp.Error{Code: 550, Msg: "no"} },
	}, resets: &resets}
	require.NoError(t, recv.Serve(context.Background(), h))
	log := turnLog(t, srv)
	assert.Equal(t, "250 OK", log[2].Reply, "MAIL x@y")
	assert.Equal(t, "550 no", log[3].Reply)
	assert.Equal(t, "250 OK", log[4].Reply, "RSET")
	assert.Equal(t, "500 Line too long", log[5].Reply)
	assert.Equal(t, smtptest.TurnStep{Command: "MAIL FROM:<spam@example.net>", Reply: "550 go away"}, log[6])
	assert.Equal(t, "QUIT", log[7].Command, "the script gives up after a refused MAIL")
	assert.Equal(t, 1, resets, "RSET abandoned the first transaction")

	srv = newTestServer(t, smtptest.Config{Turn: &smtptest.Turn{From: "a@b", To: []string{"c@d"}}})
	c = dialTest(t, srv, nil)
	recv, err = Turn(context.Background(), c)
	require.NoError(t, err)
	require.NoError(t, recv.Serve(context.Background(), turnHelloRefuser{}))
	log = turnLog(t, srv)
	assert.Equal(t, "550 who are you?", log[1].Reply)
	assert.Equal(t, "QUIT", log[2].Command)
}

type turnResetHandler struct {
	TurnFuncs
	resets *int
}

func (h *turnResetHandler) Reset() { *h.resets++ }

type turnHelloRefuser struct{ TurnFuncs }

func (turnHelloRefuser) Hello(string) error { return &smtp.Error{Code: 550, Msg: "who are you?"} }

// A peer that goes away without QUIT, and a context that ends Serve; with
// no Hostname the Receiver names itself by its address literal.
func TestTurn_ConnectionEnds(t *testing.T) {
	c, s := dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: TURN", "S: 250 ok",
		"C: 220 [127.0.0.1] Service ready", "S: HELO peer", "C: 250 [127.0.0.1]", "S: MAIL FROM:<a@b>", "C: 250 OK", "CLOSE")
	recv, err := Turn(context.Background(), c)
	require.NoError(t, err)
	reset := 0
	err = recv.Serve(context.Background(), &turnResetHandler{resets: &reset})
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, 1, reset, "the open transaction is abandoned")
	s.Received()

	c, _ = dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: TURN", "S: 250 ok",
		"C: 220 [127.0.0.1] Service ready", "STALL")
	recv, err = Turn(context.Background(), c)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = recv.Serve(ctx, TurnFuncs{})
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// The data reader: a leading dot removed only at the start of a line, also
// for lines longer than the read buffer; ".\n" ends the data as ".\r\n"
// does; the end of the stream before the end of the data is an error.
func TestTurn_DotReader(t *testing.T) {
	long := "." + strings.Repeat("x", 20) + "." + strings.Repeat("y", 20) + "\r\n"
	for _, tt := range []struct{ wire, want string }{
		{"..a\r\nb\r\n.\r\nafter", ".a\r\nb\r\n"},
		{long + "..\r\n.\n", long[1:] + ".\r\n"},
		{"a\n.b\n.\n", "a\nb\n"},
		{".\r\n", ""},
		{"x.\r\n.\r\r\n.\r\n", "x.\r\n\r\r\n"},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tt.wire), 16)
		d := &dotReader{r: br, deadline: func() {}, bol: true}
		got, err := io.ReadAll(d)
		require.NoError(t, err, "%q", tt.wire)
		assert.Equal(t, tt.want, string(got), "%q", tt.wire)
	}
	d := &dotReader{r: bufio.NewReader(strings.NewReader("a\r\nb")), deadline: func() {}, bol: true}
	_, err := io.ReadAll(d)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}
