package main

import (
	"context"
	"fmt"
	"time"
)

// The workload of the issue: messages of 2 KiB to 3 recipients each, all
// over one connection.
const (
	defaultMessages = 200
	bodySize        = 2048
	sender          = "sender@example.com"
)

var recipients = []string{"rcpt1@example.com", "rcpt2@example.com", "rcpt3@example.com"}

// A workload is what one run sends over one connection.
type workload struct {
	messages int
	from     string
	to       []string
	body     []byte // CRLF text, not dot-stuffed
}

func newWorkload(messages int) workload {
	return workload{messages: messages, from: sender, to: recipients, body: makeMessage(bodySize)}
}

// makeMessage returns a message of exactly size octets (size >= 200): a
// few header fields, then CRLF-terminated text lines of about 70 octets,
// every eighth starting with "." so that DATA has dots to stuff.
func makeMessage(size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, "From: Bench Sender <sender@example.com>\r\n"+
		"To: rcpt1@example.com, rcpt2@example.com, rcpt3@example.com\r\n"+
		"Subject: resmtp benchmark message\r\n"+
		"Message-ID: <bench@bench.example>\r\n"+
		"\r\n"...)
	const text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
	for i := 0; ; i++ {
		lead := ""
		if i%8 == 7 {
			lead = "."
		}
		line := fmt.Sprintf("%s%05d %s", lead, i, text[(i*7)%len(text):])
		line = line[:min(len(line), 68)]
		left := size - len(b)
		if left < len(line)+2+16 {
			// The last line fills the message exactly.
			line = (text + text)[:max(left-2, 0)]
			b = append(b, line...)
			b = append(b, "\r\n"[max(2-left, 0):]...)
			return b
		}
		b = append(b, line...)
		b = append(b, '\r', '\n')
	}
}

// A result is one client's run of a workload.
type result struct {
	client      string
	rtt         time.Duration // nominal round-trip time (2 × the proxy's delay)
	effRTT      time.Duration // measured: lock-step NOOPs through the proxy
	messages    int
	elapsed     time.Duration
	turnarounds int64 // -1: not counted
	err         error

	runs             int     // repetitions the median is taken of
	fastest, slowest float64 // msgs/s over them
}

func (r result) msgsPerSec() float64 { return float64(r.messages) / r.elapsed.Seconds() }

func (r result) turnsPerMsg() float64 {
	if r.turnarounds < 0 {
		return -1
	}
	return float64(r.turnarounds) / float64(r.messages)
}

// A runFunc sends w over one connection to addr: connect, greet, send
// every message, quit.
type runFunc func(ctx context.Context, addr string, w workload) error

// A client is one of the compared implementations.
type client struct {
	name string
	run  runFunc
	// needsChunking: the client sends BDAT without asking the server,
	// so it cannot run against one without CHUNKING (smtp-sink).
	needsChunking bool
}

// A copyFunc sends one message msg over one connection to addr (an SMTP
// server, or for the raw TCP baseline a discard.Sink).
type copyFunc func(ctx context.Context, addr string, msg []byte) error

type copier struct {
	name string
	sink bool // addr is a discard.Sink, not an SMTP server
	run  copyFunc
}

// clients and copiers are the implementations compared; resmtp's are added
// by resmtp.go.
var (
	clients = []client{{name: "net/smtp", run: runNetSMTP}}
	copiers = []copier{
		{"net/smtp DATA", false, copyNetSMTP},
		{"raw TCP", true, copyRaw},
	}
)
