package smtptest

import (
	"fmt"
	"strings"
)

// LMTP (RFC 2033) support: per-recipient replies after the message data.

// noRcptCode is the reply code for DATA (or a BDAT chunk) when RCPT
// commands were sent but none was accepted: 554 in SMTP, 503 in LMTP
// (RFC 2033 section 4.2).
func (c *conn) noRcptCode() int {
	if c.s.cfg.LMTP {
		return 503
	}
	return 554
}

// lmtpRcptReply returns the complete reply (CRLF-terminated, or "" for
// none) sent after the data for recipient rcpt.
func (c *conn) lmtpRcptReply(rcpt string) string {
	if raw, ok := c.override("LMTP", rcpt); ok {
		return withCRLF(raw)
	}
	switch lp := localPart(rcpt); {
	case strings.HasPrefix(lp, "lmtpfail"):
		return c.format(452, "4.2.2", "<"+rcpt+"> mailbox full")
	case strings.HasPrefix(lp, "lmtpreject"):
		return c.format(550, "5.1.1", "<"+rcpt+"> mailbox unavailable")
	}
	return c.format(250, "2.1.5", "<"+rcpt+"> delivered")
}

func withCRLF(raw string) string {
	if raw != "" && !strings.HasSuffix(raw, "\n") {
		raw += "\r\n"
	}
	return raw
}

// takePending removes and returns the queued override for the first of
// verbs that has one.
func (c *conn) takePending(verbs []string) (string, bool) {
	for _, v := range verbs {
		if p, ok := c.pending[v]; ok {
			delete(c.pending, v)
			c.record("* override " + v)
			return withCRLF(p), true
		}
	}
	return "", false
}

// lmtpEndOfData completes an LMTP transaction: it decides every
// recipient's outcome, stores the message if any recipient got a 2xx reply
// and sends one reply per recipient accepted at RCPT, in RCPT order.
func (c *conn) lmtpEndOfData(t *transaction, via string, verbs []string) error {
	first, hasFirst := c.takePending(verbs)
	replies := make([]string, len(t.to))
	lines := make([]string, len(t.to))
	var to []string
	var rcptParams [][]string
	for i, rcpt := range t.to {
		raw := c.lmtpRcptReply(rcpt)
		if i == 0 && hasFirst {
			raw = first
		}
		replies[i] = raw
		lines[i] = strings.TrimRight(raw, "\r\n")
		if raw != "" && raw[0] == '2' {
			to = append(to, rcpt)
			rcptParams = append(rcptParams, t.rcptParams[i])
		}
	}
	if len(to) > 0 {
		c.s.addMessage(Message{
			Verb:        t.verb,
			From:        t.from,
			To:          to,
			MailParams:  t.mailParams,
			RcptParams:  rcptParams,
			Data:        t.data,
			Via:         via,
			QueueID:     fmt.Sprintf("Q%d", c.s.queueSeq.Add(1)),
			ConnIndex:   c.idx,
			Helo:        c.helo,
			TLS:         c.tls,
			AuthUser:    c.authUser,
			LMTPReplies: lines,
		})
	}
	c.resetTx()
	return c.lmtpSend(replies, verbs)
}

// lmtpRepeat sends the same failure reply once per recipient of t.
func (c *conn) lmtpRepeat(t *transaction, verbs []string, code int, enh, text string) error {
	raw := c.format(code, enh, text)
	replies := make([]string, len(t.to))
	for i := range replies {
		replies[i] = raw
	}
	return c.lmtpSend(replies, verbs)
}

// lmtpSend queues the per-recipient replies. The first one is the reply to
// verbs (overrides, Stall, Delay and CloseBeforeReply of those apply to it);
// every one is also a reply to the "LMTP" pseudo-verb. With a Delay for
// "LMTP", queued replies are flushed before each later delay, so the client
// sees earlier replies while the server "delivers" to the next recipient.
func (c *conn) lmtpSend(replies []string, verbs []string) error {
	for i, raw := range replies {
		vs := []string{"LMTP"}
		if i == 0 {
			vs = append(append([]string(nil), verbs...), "LMTP")
		} else if c.f.Delay["LMTP"] > 0 {
			if err := c.flush(); err != nil {
				return err
			}
		}
		if err := c.sendRaw(raw, vs...); err != nil {
			return err
		}
		if n := c.f.LMTPCloseAfterReplies; n > 0 && i+1 == n && n < len(replies) {
			c.flush()
			c.record(fmt.Sprintf("* close: fault LMTPCloseAfterReplies %d of %d", n, len(replies)))
			return errClose
		}
	}
	return nil
}
