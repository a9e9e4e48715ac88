package discard

import (
	"net"
	"sync"
	"sync/atomic"
)

// A Sink is the raw-TCP counterpart of Server, for a baseline: it reads
// each connection to its end and throws the bytes away, then writes "ok\n"
// and closes it, so that a client that half-closes its side and reads the
// answer knows that every byte was read.
type Sink struct {
	// Addr is the address ("127.0.0.1:port") the sink listens on.
	Addr string

	ln    net.Listener
	bytes atomic.Int64
	wg    sync.WaitGroup
}

// NewSink starts a Sink on 127.0.0.1 (a free port).
func NewSink() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: ln.Addr().String(), ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					s.bytes.Add(int64(n))
					if err != nil {
						break
					}
				}
				c.Write([]byte("ok\n"))
			}()
		}
	}()
	return s, nil
}

// Bytes returns how many bytes the sink has read.
func (s *Sink) Bytes() int64 { return s.bytes.Load() }

// Close stops listening and waits for the open connections to end.
func (s *Sink) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}
