// Package smtp is an SMTP client: a drop-in replacement for net/smtp with
// contexts, timeouts, RFC 2920 pipelining and RFC 1845 checkpoint/restart.
//
// # Which way of sending
//
// From the simplest to the most capable; each builds on the one before.
//
// SendMail is net/smtp's: one message, one connection, net/smtp's errors.
// Use it when migrating, or when one message now and then is all you send.
// With PIPELINING it takes three client turns, and it delivers to every
// recipient or to none.
//
//	err := smtp.SendMail("mail.example.com:587", auth, from, to, msg)
//
// Client.Send sends one message over a Client from a Dialer and returns a
// Result with each recipient's outcome: a refused recipient does not stop
// the message for the others (the error is then a *RecipientsError). Use it
// when you hold a connection and want per-recipient results, envelope
// parameters (SIZE, DSN, SMTPUTF8, REQUIRETLS) and a context.
//
//	c, err := (&smtp.Dialer{}).Dial(ctx, "mail.example.com:25")
//	res, err := c.Send(ctx, &smtp.Envelope{From: from, To: smtp.Recipients(to...)}, body)
//
// A Batch sends many messages over one connection, each transaction
// pipelined with the end of the one before (about one round trip per
// message with DATA, far fewer with CHUNKING). Use it for bulk mail to one
// server when one goroutine has the messages at hand.
//
//	b, err := c.NewBatch(ctx)
//	for _, m := range msgs {
//		b.Send(m.env, m.body, func(res *smtp.Result, err error) { record(m, res, err) })
//	}
//	err = b.Quit()
//
// A Pool sends for many goroutines over a few connections per server:
// concurrent Sends queue up and each connection pipelines them as a Batch
// does, each Send getting its own Result. Deliver sends by the recipients'
// MX hosts, and a Limiter shapes the traffic per destination (RateLimiter
// in the process, the redislimit module across processes). Use it in a
// service or a bulk mailer where messages arrive concurrently.
//
//	p := &smtp.Pool{Dialer: &smtp.Dialer{LocalName: "app1.example.org"}}
//	res, err := p.Send(ctx, "mail.example.com:25", env, body)
//	res, err = p.Deliver(ctx, env, body) // RcptResult.Status: delivered, deferred, bounced
//
// A Courier sees one message through broken connections: with CHECKPOINT
// (RFC 1845) it reconnects, to the same address first, and sends only what
// the server does not hold yet, so a large message over a poor link is
// neither lost nor delivered twice. Deliver resolves the domain's MX hosts
// (RFC 5321 §5.1). A CheckpointStore lets another process Resume: package
// store keeps checkpoints in files, the pgstore module in PostgreSQL.
//
//	dir, err := store.OpenDir("/var/spool/app/checkpoints")
//	k := &smtp.Courier{Dialer: d, Store: dir}
//	res, err := k.Deliver(ctx, "example.net", env, body)
//
// # Errors
//
// The methods named as in net/smtp (Dial, NewClient, SendMail, and Client's
// Hello, StartTLS, Auth, Mail, Rcpt, Data, Verify, Reset, Noop, Quit)
// return net/smtp's errors: a *textproto.Error for a refusal, the network's
// own error for a broken connection. Everything else returns an *Error for
// a refusal, with the enhanced status code and Temporary, and connection
// errors that say what the Client was doing. EnhancedCodeOf reads the
// enhanced code from either.
//
// # Commands of your own
//
// A Pipeline sends any command, grouped with others as RFC 2920 allows,
// and ends in one of three ways: Exec reads the replies, Data goes on into
// a data phase for a command answered 354, and Hijack hands the connection
// to the caller. Package rfc821 builds RFC 821's TURN and SEND, SOML and
// SAML, and RFC 772's MRSQ on these alone.
//
//	p := c.Pipeline()
//	x := p.Cmd(250, "ETRN %s", domain)
//	err := p.Exec(ctx) // then x.Reply, or the refusal in x.Err
//
// # Tracing
//
// A ClientTrace's hooks see every command, reply and progress step, with
// credentials redacted: for every connection of a Dialer (Dialer.Trace), or
// for one call (WithClientTrace). SlogTrace logs them to log/slog, and
// Pool.Stats counts a Pool's work per destination.
package smtp
