package smtp

import (
	"context"
	"crypto/tls"
	"reflect"
)

// ClientTrace is a set of hooks run at points in a Client's life, in the
// manner of net/http/httptrace. Any hook may be nil. Hooks run synchronously
// on the goroutine that called the Client method, so they must be quick and
// must not call the Client.
//
// No hook ever sees credentials: the arguments of AUTH and the client's
// responses to 334 challenges are replaced by "<redacted>", and so is the
// text of 334 replies.
type ClientTrace struct {
	// CommandSent is called with each command line the Client writes,
	// without its CRLF, after it is put in the write buffer (it may reach
	// the network later, with the rest of its pipelined group).
	CommandSent func(line string)

	// ReplyRead is called with each reply read, whether it was expected or
	// not. The Reply must not be kept after the hook returns.
	ReplyRead func(r *Reply)

	// TLSHandshakeDone is called after a TLS handshake, implicit or after
	// STARTTLS, with its outcome.
	TLSHandshakeDone func(state tls.ConnectionState, err error)

	// DataProgress is called while message data is written, by every way
	// of sending alike: written is the number of canonical octets (CRLF
	// line ends, before dot-stuffing: RFC 1845 §3's offsets) from the start
	// of the message, so a resumed transfer starts at the offset the
	// server holds; total is the canonical size when it is known before the
	// end (a binary message of known length, or a message an earlier
	// attempt sent to its end), else -1. It is called about once per
	// 64 KiB, and once with (size, size) when the whole
	// message is written.
	DataProgress func(written, total int64)

	// Connected is called by a Courier when it has connected to addr for
	// its attempt-th try at a message (1 for the first).
	Connected func(addr string, attempt int)

	// AttemptFailed is called by a Courier when the connection to addr
	// broke, or could not be made, before the message was through; it
	// tries again after its RetryDelay while attempts remain.
	AttemptFailed func(addr string, err error)

	// Resumed is called when the server answered a restart's MAIL with
	// "355 offset" (RFC 1845 §3). With a nil err it holds the first offset
	// octets, and only the rest is sent. A non-nil err says why the offset
	// cannot be right (beyond the message, or not at a line start for
	// DATA): the Courier sends RSET and the whole message instead.
	Resumed func(offset int64, err error)

	// StoreFailed is called by a Courier when its CheckpointStore failed
	// to save ("save") or delete ("delete") the checkpoint of the
	// transaction transID. The Courier goes on: a failed save after a cut
	// loses only the chance to Resume from another process; a failed
	// delete leaves behind the record of a transaction that is complete,
	// which must not be Resumed (a server that no longer remembers the
	// TRANSID would take the message again): remove it from the store.
	// The first save of a transaction is different: its failure is Send's
	// error, and nothing is sent.
	StoreFailed func(op, transID string, err error)
}

// progressInterval is the number of octets between two DataProgress calls.
const progressInterval = 64 << 10

const redacted = "<redacted>"

type clientTraceKey struct{}

// WithClientTrace returns a context based on ctx whose calls are traced by
// t as well: every blocking call of a Client, Batch, Pool or Courier made
// with it (or with a context derived from it) runs t's hooks first, then
// those of a trace already in ctx, then those of the Dialer's Trace. This
// traces one call, or one Send of a Pool, without tracing every
// connection.
func WithClientTrace(ctx context.Context, t *ClientTrace) context.Context {
	if t == nil {
		return ctx
	}
	return context.WithValue(ctx, clientTraceKey{}, t.compose(ContextClientTrace(ctx)))
}

// ContextClientTrace returns the ClientTrace associated with ctx by
// WithClientTrace, or nil.
func ContextClientTrace(ctx context.Context) *ClientTrace {
	t, _ := ctx.Value(clientTraceKey{}).(*ClientTrace)
	return t
}

// compose returns a trace whose hooks run t's hook and then next's; t or
// next itself when the other is nil. Neither is changed.
func (t *ClientTrace) compose(next *ClientTrace) *ClientTrace {
	if t == nil {
		return next
	}
	if next == nil {
		return t
	}
	nt := *t
	tv, nv := reflect.ValueOf(&nt).Elem(), reflect.ValueOf(next).Elem()
	for i := range tv.NumField() {
		first, second := tv.Field(i), nv.Field(i)
		if second.IsNil() {
			continue
		}
		if first.IsNil() {
			first.Set(second)
			continue
		}
		f1, f2 := reflect.ValueOf(first.Interface()), second
		first.Set(reflect.MakeFunc(first.Type(), func(args []reflect.Value) []reflect.Value {
			f1.Call(args)
			return f2.Call(args)
		}))
	}
	return &nt
}
