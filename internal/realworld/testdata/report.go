// report.go is copied next to every scenario program's main.go by the
// harness (package realworld); it prints the machine-readable outcome.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"time"
)

// outcome is one step of a scenario, printed as a JSON line.
type outcome struct {
	Step string   `json:"step"`
	Ms   int64    `json:"ms"`
	Err  *errInfo `json:"err,omitempty"`
}

// errInfo records what callers of net/smtp test an error for.
type errInfo struct {
	Type      string `json:"type"`      // dynamic type, %T
	Text      string `json:"text"`      // Error()
	EOF       bool   `json:"eof"`       // err == io.EOF
	Textproto bool   `json:"textproto"` // err.(*textproto.Error)
	Timeout   bool   `json:"timeout"`   // err.(net.Error) with Timeout()
}

var out = json.NewEncoder(os.Stdout)

// report prints the outcome of step, begun at start, that ended with err.
func report(step string, start time.Time, err error) {
	o := outcome{Step: step, Ms: time.Since(start).Milliseconds()}
	if err != nil {
		o.Err = &errInfo{Type: fmt.Sprintf("%T", err), Text: err.Error(), EOF: err == io.EOF}
		_, o.Err.Textproto = err.(*textproto.Error)
		ne, ok := err.(net.Error)
		o.Err.Timeout = ok && ne.Timeout()
	}
	if err := out.Encode(o); err != nil {
		os.Exit(3)
	}
}

// splitAddr splits "host:port" for the libraries that take them apart.
func splitAddr(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return host, port
}
