package smtp

import (
	"fmt"
	"strings"
)

// A Result is the outcome of one mail transaction.
type Result struct {
	// Recipients holds the outcome for each recipient of the Envelope, in
	// order.
	Recipients []RcptResult
	// Reply is the server's reply to the end of the message data (often
	// with a queue id), or nil if the message was not sent.
	Reply *Reply
	// Octets is the canonical size of the message.
	Octets int64
	// Transmitted counts the canonical octets written to the network, in
	// all attempts: less than Octets after a restart (RFC 1845) that did
	// not send what the server already held, more after restarts that had
	// to send the message again.
	Transmitted int64
	// Restarts counts the reconnections a Courier needed.
	Restarts int
	// PossibleCopies counts the copies the server may hold besides the one
	// this Result reports: the times a Courier sent the message again in
	// full after an attempt whose end of data went out and whose reply was
	// lost, because the server could not say whether it had taken it (it
	// did not offer CHECKPOINT, or it no longer knew the TRANSID). Zero
	// means no copy is possible.
	PossibleCopies int

	resumed bool // the last attempt resumed (RFC 1845 355)
}

// Accepted returns the number of recipients the server accepted.
func (r *Result) Accepted() int {
	n := 0
	for _, rr := range r.Recipients {
		if rr.Err == nil {
			n++
		}
	}
	return n
}

// An RcptResult is the outcome for one recipient.
type RcptResult struct {
	Addr  string
	Reply *Reply // the reply to RCPT, or nil if it was not read
	// Delivery is, with LMTP, this recipient's own reply after the data
	// (RFC 2033 §4.2); nil otherwise.
	Delivery *Reply
	Err      error // nil if accepted (and, with LMTP, delivered), else an *Error
}

// RecipientsError reports recipients the server refused. When Accepted is
// not zero, the message was delivered to the others: a refused recipient is
// not a failure of the rest. errors.As finds the *Error of each refusal
// (and a *textproto.Error), the first one first.
type RecipientsError struct {
	Refused  []RcptResult
	Accepted int
}

func (e *RecipientsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "smtp: %d of %d recipients refused", len(e.Refused), len(e.Refused)+e.Accepted)
	for i, r := range e.Refused {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Refused)-i)
			break
		}
		fmt.Fprintf(&b, "; <%s>: %v", r.Addr, r.Err)
	}
	return b.String()
}

// Unwrap returns the error of each refused recipient.
func (e *RecipientsError) Unwrap() []error {
	errs := make([]error, len(e.Refused))
	for i, r := range e.Refused {
		errs[i] = r.Err
	}
	return errs
}
