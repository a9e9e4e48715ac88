// Command historic speaks the rest of RFC 821 and RFC 772 to an embedded
// SMTP server and prints the exchange:
//
//	go run ./examples/historic
//
// It starts internal/smtptest on a loopback port with the optional RFC 821
// commands and RFC 772's MRSQ/MRCP turned on, and
//
//  1. asks for HELP and expands a mailing list with EXPN (RFC 821 §3.3);
//  2. sends a message with SAML in place of MAIL (RFC 821 §3.4) from the
//     null reverse-path to a source-routed recipient (RFC 821 §3.6);
//  3. asks "MRSQ ?" and sends one text to several recipients with MRSQ R
//     (recipients first) and MRSQ T (text first), one of them refused with
//     553 (RFC 772 Appendices A and B);
//  4. after STARTTLS and AUTH, sends TURN (RFC 821 §3.8) and receives, as
//     the receiver now, the mail the server holds for it.
//
// HELP, EXPN and source routes are the Client's own; SAML, MRSQ and TURN
// come from the rfc821 package, which adds them on the Client's public API
// (Pipeline: Cmd, Exec, Data, Hijack).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/resmtp/smtp/rfc821"
)

// localName is the client's name in its EHLO, and the Receiver's after
// TURN.
const localName = "client.historic.example"

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "historic:", err)
		os.Exit(1)
	}
}

const password = "correct horse battery staple"

func run(out io.Writer) error {
	srv, err := newServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "embedded SMTP server listening on %s\n\n", srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	d := &smtp.Dialer{LocalName: localName, TLSPolicy: smtp.TLSRequired, TLSConfig: srv.ClientTLSConfig(), Trace: printTrace(out)}
	fmt.Fprintln(out, "== EHLO over STARTTLS: the server lists the RFC 821 commands it implements (RFC 1869 §5)")
	c, err := d.Dial(ctx, srv.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, step := range []func(context.Context, io.Writer, *smtp.Client) error{helpAndExpand, saml, mrsq} {
		if err := step(ctx, out, c); err != nil {
			return err
		}
	}
	return turn(ctx, out, c, srv)
}

// newServer starts the embedded server with the historic commands on.
func newServer() (*smtptest.Server, error) {
	return smtptest.NewServer(smtptest.Config{
		Hostname:   "mx.historic.example",
		Extensions: []string{"ENHANCEDSTATUSCODES", "STARTTLS", "AUTH PLAIN", "SEND", "SOML", "SAML", "HELP"},
		Users:      map[string]string{"client": password},
		Lists: map[string][]string{"Example-People": {
			"Jon Postel <Postel@USC-ISIF.ARPA>",
			"Quincy Smith <@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA>",
			"<xyz@bar-unix.ARPA>",
		}},
		MRSQ: "TR",
		Turn: &smtptest.Turn{
			Helo: "mx.historic.example",
			From: "@mx.historic.example:postel@usc-isif.arpa",
			To:   []string{"joe@client.historic.example", "sam@elsewhere.example"},
			Data: "Subject: held for you\r\n\r\n.this line starts with a dot\r\nThe end.\r\n",
		},
	})
}

// printTrace prints every command and reply to out.
func printTrace(out io.Writer) *smtp.ClientTrace {
	return &smtp.ClientTrace{
		CommandSent: func(line string) { fmt.Fprintf(out, "  C: %s\n", line) },
		ReplyRead: func(r *smtp.Reply) {
			for i, l := range r.Lines {
				sep := " "
				if i < len(r.Lines)-1 {
					sep = "-"
				}
				fmt.Fprintf(out, "  S: %d%s%s\n", r.Code, sep, l)
			}
		},
	}
}

// helpAndExpand is step 1: HELP, and EXPN of a list and of a list the
// server will not expand.
func helpAndExpand(ctx context.Context, out io.Writer, c *smtp.Client) error {
	fmt.Fprintln(out, "\n== 1. HELP and EXPN (RFC 821 §3.3, §4.1.1)")
	if _, err := c.Help(ctx, "MRSQ"); err != nil {
		return err
	}
	members, err := c.Expand(ctx, "Example-People")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  -- members: %s\n", strings.Join(members, ", "))
	if _, err := c.Expand(ctx, "Executive-Washroom-List"); err != nil {
		fmt.Fprintf(out, "  -- refused: %v\n", err)
	}
	return nil
}

// saml is step 2: a message with SAML from the null reverse-path to a
// source route.
func saml(ctx context.Context, out io.Writer, c *smtp.Client) error {
	fmt.Fprintln(out, "\n== 2. SAML from the null reverse-path to a source route (RFC 821 §3.4, §3.6)")
	route, err := smtp.ParsePath("<@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA>")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  -- route %v, mailbox %s\n", route.Route, route.Mailbox)
	if err := rfc821.StartMail(ctx, c, "SAML", ""); err != nil {
		return err
	}
	if err := c.RcptContext(ctx, route.Addr()); err != nil {
		return err
	}
	w, err := c.DataContext(ctx)
	if err != nil {
		return err
	}
	io.WriteString(w, "Subject: to your terminal and your mailbox\r\n\r\nHello, Quincy.\r\n")
	return w.Close()
}

// mrsq is step 3: the server's preferred MRSQ scheme, then one text to
// four recipients with each scheme.
func mrsq(ctx context.Context, out io.Writer, c *smtp.Client) error {
	fmt.Fprintln(out, "\n== 3. RFC 772 MRSQ: the preferred scheme, then R and T; one recipient refused")
	pref, err := rfc821.MRSQ(ctx, c, rfc821.MRSQQuery)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  -- the server prefers %q\n", pref)
	text := "Subject: MRSQ\r\n\r\nBlah blah blah blah....etc. etc. etc.\r\n"
	to := []string{"Foo@Y", "reject.Raboof@Y", "bar@Y", "@Y,@X,fubar@Z"} // RFC 772's own names
	for _, scheme := range []rfc821.MRSQScheme{rfc821.MRSQRecipientsFirst, rfc821.MRSQTextFirst} {
		res, err := rfc821.SendMRSQ(ctx, c, scheme, "waldo@A", to, strings.NewReader(text))
		var re *smtp.RecipientsError
		if err != nil && !errors.As(err, &re) {
			return err
		}
		fmt.Fprintf(out, "  -- MRSQ %s: delivered to %d of %d", scheme, res.Accepted(), len(to))
		for _, r := range res.Recipients {
			if r.Err != nil {
				fmt.Fprintf(out, "; <%s> refused: %v", r.Addr, r.Err)
			}
		}
		fmt.Fprintln(out)
	}
	return nil
}

// turn is step 4: AUTH, TURN, and the client receiving as the server's
// receiver now; then the exchange as the server logged it.
func turn(ctx context.Context, out io.Writer, c *smtp.Client, srv *smtptest.Server) error {
	fmt.Fprintln(out, "\n== 4. TURN (RFC 821 §3.8): authenticated first, then the client becomes the receiver")
	host, _, _ := net.SplitHostPort(srv.Addr) // PlainAuth checks the server's name
	if err := c.AuthContext(ctx, smtp.PlainAuth("", "client", password, host)); err != nil {
		return err
	}
	recv, err := rfc821.Turn(ctx, c)
	if err != nil {
		return err
	}
	recv.Hostname = localName // the domain whose mail comes back
	h := rfc821.TurnFuncs{
		OnRcpt: func(to string) error {
			if !strings.HasSuffix(to, "@client.historic.example") {
				return &smtp.Error{Code: 550, Msg: "5.7.1 not a domain of mine"}
			}
			return nil
		},
		OnData: func(r io.Reader) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  -- received %d octets:\n", len(b))
			for _, l := range strings.SplitAfter(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
				fmt.Fprintf(out, "     | %s\n", strings.TrimSuffix(l, "\r\n"))
			}
			return nil
		},
	}
	if err := recv.Serve(ctx, h); err != nil {
		return err
	}
	fmt.Fprintln(out, "  -- the exchange, the server sending now:")
	for _, st := range turnLog(srv) {
		if st.Command == "." {
			fmt.Fprintln(out, "  S: <the message, dot-stuffed>")
		}
		if st.Command != "" {
			fmt.Fprintf(out, "  S: %s\n", st.Command)
		}
		for _, l := range strings.Split(st.Reply, "\n") {
			fmt.Fprintf(out, "  C: %s\n", l)
		}
	}
	return nil
}

// turnLog waits until the server has logged the reply to its QUIT, then
// returns its log of the exchange after TURN.
func turnLog(srv *smtptest.Server) []smtptest.TurnStep {
	for range 500 {
		for _, l := range srv.Transcript(1) {
			if strings.HasPrefix(l, "* close") {
				return srv.TurnLog(1)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv.TurnLog(1)
}
