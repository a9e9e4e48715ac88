package smtp

import "time"

// Timeouts bounds how long a Client waits for each step, after RFC 5321
// §4.5.3.2. A zero field takes the RFC's value; a negative one means no limit.
// A context deadline that comes sooner always wins.
type Timeouts struct {
	Connect   time.Duration // opening the connection, an implicit TLS handshake included: 30 seconds
	Greeting  time.Duration // the 220 greeting: 5 minutes
	Mail      time.Duration // the reply to MAIL: 5 minutes
	Rcpt      time.Duration // the reply to RCPT: 5 minutes
	DataInit  time.Duration // the 354 reply to DATA: 2 minutes
	DataBlock time.Duration // each write of message data to the network: 3 minutes
	DataTerm  time.Duration // the reply to the final ".": 10 minutes
	Command   time.Duration // any other command (EHLO, STARTTLS, AUTH, RSET, ...): 5 minutes
}

// withDefaults returns t with each zero field set to RFC 5321 §4.5.3.2's
// value (Connect, which the RFC leaves open, to 30 seconds).
func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Greeting, 5*time.Minute)
	def(&t.Mail, 5*time.Minute)
	def(&t.Rcpt, 5*time.Minute)
	def(&t.DataInit, 2*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataTerm, 10*time.Minute)
	def(&t.Command, 5*time.Minute)
	return t
}

// noTimeouts returns the Timeouts of a Client on a connection whose
// deadlines are the caller's: no limit of the Client's own.
func noTimeouts() Timeouts {
	return Timeouts{Connect: -1, Greeting: -1, Mail: -1, Rcpt: -1, DataInit: -1, DataBlock: -1, DataTerm: -1, Command: -1}
}
