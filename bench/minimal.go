package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// The minimal pipelining clients: the least an SMTP client can do to send
// the workload with PIPELINING, as a yardstick for this library's cost per
// message. They know the server (it offers PIPELINING and, for BDAT,
// CHUNKING), the message (canonical text whose stuffed form is prepared
// once), and check only reply classes: no limits, no timeouts, no error
// recovery, no tracing. Replies are read by a goroutine of their own, so
// that writing never blocks against a server that answers as it reads.

func init() {
	clients = append(clients,
		client{name: "minimal PIPELINING", run: runMinimal(false)},
		client{name: "minimal PIPELINING+CHUNKING", run: runMinimal(true), needsChunking: true},
	)
}

// runMinimal sends w over BDAT if chunking, else over DATA.
func runMinimal(chunking bool) runFunc {
	return func(ctx context.Context, addr string, w workload) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		br, bw := bufio.NewReaderSize(conn, 64<<10), bufio.NewWriterSize(conn, 64<<10)
		if err := expectReply(br, '2'); err != nil { // greeting
			return err
		}
		bw.WriteString("EHLO bench.example\r\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := expectReply(br, '2'); err != nil {
			return err
		}
		envelope := []byte("MAIL FROM:<" + w.from + ">\r\n")
		for _, r := range w.to {
			envelope = append(envelope, "RCPT TO:<"+r+">\r\n"...)
		}
		// Per message: MAIL, the RCPTs, then DATA's 354 and the reply to
		// the "."; or the reply to BDAT.
		perMessage := 1 + len(w.to) + 1
		if !chunking {
			perMessage++
		}
		// The reader reports each 354 (DATA may not be followed by the
		// text before it, RFC 2920 §3.1), and the first error.
		go354 := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- readReplies(br, w.messages*perMessage+1, go354) // +1: QUIT
		}()
		var body []byte // what follows the envelope
		if chunking {
			body = append([]byte("BDAT "+strconv.Itoa(len(w.body))+" LAST\r\n"), w.body...)
		} else {
			body = append(bytes.ReplaceAll(append([]byte("\r\n"), w.body...), []byte("\r\n."), []byte("\r\n.."))[2:], ".\r\n"...)
		}
		for range w.messages {
			bw.Write(envelope)
			if !chunking {
				bw.WriteString("DATA\r\n")
				if err := bw.Flush(); err != nil {
					return err
				}
				select {
				case <-go354:
				case err := <-done:
					return fmt.Errorf("minimal client: %v before 354", err)
				}
			}
			bw.Write(body)
		}
		bw.WriteString("QUIT\r\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		return <-done
	}
}

// readReplies reads n replies, each of class 2 or 3, signalling each 354
// on go354, and returns the first failure.
func readReplies(br *bufio.Reader, n int, go354 chan<- struct{}) error {
	for range n {
		code, err := readReply(br)
		if err != nil {
			return err
		}
		if code[0] != '2' && code[0] != '3' {
			return fmt.Errorf("minimal client: reply %s", code[:])
		}
		if code == [3]byte{'3', '5', '4'} {
			go354 <- struct{}{}
		}
	}
	return nil
}

// expectReply reads one reply and checks its class.
func expectReply(br *bufio.Reader, class byte) error {
	code, err := readReply(br)
	if err == nil && code[0] != class {
		err = fmt.Errorf("minimal client: reply %s", code[:])
	}
	return err
}

// readReply reads the lines of one reply and returns its code.
func readReply(br *bufio.Reader) ([3]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return [3]byte{}, err
		}
		if len(line) < 4 {
			return [3]byte{}, errors.New("minimal client: short reply line")
		}
		if line[3] != '-' {
			return [3]byte(line[:3]), nil
		}
	}
}
