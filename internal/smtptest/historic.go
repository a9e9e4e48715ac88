package smtptest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file holds the commands of RFC 821 that RFC 5321 made optional or
// deprecated (SEND, SOML, SAML, EXPN, HELP, TURN) and RFC 772's MRSQ and
// MRCP.

// cmdSendMail handles SEND, SOML and SAML (RFC 821 §3.4): implemented when
// Config.Extensions lists the verb (RFC 5321 §F.6: a server that implements
// them publishes them in its EHLO reply), else 502. They begin a
// transaction exactly as MAIL does.
func (c *conn) cmdSendMail(verb, arg string) error {
	if _, ok := c.hasConfigExt(verb); !ok {
		return c.reply(verb, 502, "5.5.1", "Error: command not implemented")
	}
	return c.cmdMAIL(verb, arg)
}

// cmdEXPN expands a list of Config.Lists (RFC 821 §3.3, RFC 5321 §3.5).
func (c *conn) cmdEXPN(arg string) error {
	const v = "EXPN"
	if _, ok := c.hasConfigExt(v); !ok {
		return c.reply(v, 502, "5.5.1", "Error: command not implemented")
	}
	if arg == "" {
		return c.reply(v, 501, "5.5.4", "Syntax: EXPN list")
	}
	for name, members := range c.s.cfg.Lists {
		if !strings.EqualFold(name, arg) {
			continue
		}
		if len(members) == 0 {
			return c.reply(v, 252, "2.1.5", "Cannot expand the list, but will accept mail for it")
		}
		return c.replyLines(v, 250, "2.1.5", members)
	}
	return c.reply(v, 550, "5.1.1", "Error: no such mailing list")
}

// helpTopics answers "HELP <command>".
var helpTopics = map[string]string{
	"HELO":     "HELO <domain>",
	"EHLO":     "EHLO <domain>",
	"MAIL":     "MAIL FROM:<reverse-path> [parameters]",
	"RCPT":     "RCPT TO:<forward-path> [parameters]",
	"DATA":     "DATA, then the message, ended by a line holding only \".\"",
	"BDAT":     "BDAT <size> [LAST], then size octets",
	"RSET":     "RSET",
	"NOOP":     "NOOP",
	"QUIT":     "QUIT",
	"VRFY":     "VRFY <string>",
	"EXPN":     "EXPN <list>",
	"HELP":     "HELP [<topic>]",
	"SEND":     "SEND FROM:<reverse-path>",
	"SOML":     "SOML FROM:<reverse-path>",
	"SAML":     "SAML FROM:<reverse-path>",
	"TURN":     "TURN",
	"MRSQ":     "MRSQ [R | T | ?]",
	"MRCP":     "MRCP TO:<path>",
	"STARTTLS": "STARTTLS",
	"AUTH":     "AUTH <mechanism> [initial-response]",
}

// cmdHELP answers HELP (RFC 821 §4.1.1, RFC 5321 §4.1.1.8) with a
// multi-line 214, HELP <command> with that command's syntax, and an unknown
// topic with 504.
func (c *conn) cmdHELP(arg string) error {
	const v = "HELP"
	if arg == "" {
		cmds := make([]string, 0, len(helpTopics))
		for k := range helpTopics {
			cmds = append(cmds, k)
		}
		slices.Sort(cmds)
		return c.replyLines(v, 214, "2.0.0", []string{
			"smtptest: see RFC 5321",
			"Commands: " + strings.Join(cmds, " "),
			"End of HELP info",
		})
	}
	if s, ok := helpTopics[strings.ToUpper(arg)]; ok {
		return c.reply(v, 214, "2.0.0", s)
	}
	return c.reply(v, 504, "5.5.4", "HELP topic unknown")
}

// --- TURN ----------------------------------------------------------------

// cmdTURN accepts TURN when Config.Turn is set and then plays the sender
// (RFC 821 §3.8, §4.1.1); otherwise it refuses with 502.
func (c *conn) cmdTURN(arg string) error {
	const v = "TURN"
	switch {
	case c.s.cfg.Turn == nil:
		return c.reply(v, 502, "5.5.1", "Error: TURN not implemented")
	case arg != "":
		return c.reply(v, 501, "5.5.4", "Syntax: TURN")
	case !c.greeted:
		return c.reply(v, 503, "5.5.1", "Error: send HELO/EHLO first")
	case c.tx != nil:
		return c.reply(v, 503, "5.5.1", "Error: mail transaction in progress")
	}
	if err := c.reply(v, 250, "2.0.0", "OK, changing roles"); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.record("* turn: roles reversed, the server is the sender now")
	return c.turnAround(c.s.cfg.Turn)
}

// turnAround runs the Turn script as the sender. It always ends the
// connection.
func (c *conn) turnAround(sc *Turn) error {
	greeting, err := c.turnStep("", "")
	if err != nil {
		return err
	}
	if greeting != 220 {
		c.record("* close: no 220 greeting after TURN")
		return errClose
	}
	helo := sc.Helo
	if helo == "" {
		helo = c.s.cfg.Hostname
	}
	code, err := c.turnStep("HELO "+helo, "")
	if err != nil {
		return err
	}
	if code == 250 {
		if err := c.turnTransaction(sc); err != nil {
			return err
		}
	}
	if _, err := c.turnStep("QUIT", ""); err != nil {
		return err
	}
	c.record("* close: QUIT (after TURN)")
	return errClose
}

func (c *conn) turnTransaction(sc *Turn) error {
	for _, line := range sc.Commands {
		if _, err := c.turnStep(line, ""); err != nil {
			return err
		}
	}
	if len(sc.To) == 0 {
		return nil
	}
	code, err := c.turnStep("MAIL FROM:<"+sc.From+">", "")
	if err != nil || code != 250 {
		return err
	}
	accepted := false
	for _, to := range sc.To {
		code, err := c.turnStep("RCPT TO:<"+to+">", "")
		if err != nil {
			return err
		}
		accepted = accepted || code == 250 || code == 251
	}
	if !accepted {
		return nil
	}
	if code, err := c.turnStep("DATA", ""); err != nil || code != 354 {
		return err
	}
	_, err = c.turnStep(".", stuffText(sc.Data))
	return err
}

// stuffText dot-stuffs data (RFC 5321 §4.5.2) and completes its last line; the
// terminating "." is not included.
func stuffText(data string) string {
	if data == "" {
		return ""
	}
	if !strings.HasSuffix(data, "\r\n") {
		data += "\r\n"
	}
	var b strings.Builder
	for _, l := range strings.SplitAfter(data, "\r\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	return b.String()
}

// turnStep sends line (none for the greeting), preceded by data if any,
// reads the reply and logs the exchange. It returns the reply code.
func (c *conn) turnStep(line, data string) (int, error) {
	if data != "" {
		c.w.WriteString(data)
		c.record(fmt.Sprintf("S: <data %d octets>", len(data)))
	}
	if line != "" {
		c.w.WriteString(line + "\r\n")
		c.record("S: " + line)
	}
	code, reply, err := c.readReply()
	c.s.addTurnStep(c.idx, TurnStep{Command: line, Reply: reply})
	if err != nil {
		c.record("* close: reading a reply after TURN: " + err.Error())
		return 0, errClose
	}
	return code, nil
}

// readReply reads one reply from the client (after TURN), its lines joined
// by "\n".
func (c *conn) readReply() (int, string, error) {
	var lines []string
	code := -1
	for {
		line, err := c.readLine()
		if err != nil {
			return 0, strings.Join(lines, "\n"), err
		}
		c.record("C: " + line)
		lines = append(lines, line)
		n, err := strconv.Atoi(line[:min(3, len(line))])
		if err != nil || len(line) < 3 || n < 200 || n > 599 || (code >= 0 && n != code) ||
			(len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return 0, strings.Join(lines, "\n"), fmt.Errorf("malformed reply %q", line)
		}
		code = n
		if len(line) == 3 || line[3] == ' ' {
			return code, strings.Join(lines, "\n"), nil
		}
	}
}

// --- MRSQ / MRCP (RFC 772) ---------------------------------------------

// mrsqReset is RFC 772's reset: stored names and text are forgotten; the
// scheme stays selected.
func (c *conn) mrsqReset() {
	c.mrsqRcpts = nil
	c.mrsqText = nil
}

func (c *conn) mrsqImplemented(verb string) (bool, error) {
	if c.s.cfg.MRSQ == "" || c.s.cfg.LMTP {
		return false, c.reply(verb, 502, "5.5.1", "Error: command not implemented")
	}
	return true, nil
}

var schemeText = map[string]string{"R": "Recipients first, please", "T": "Text first, please"}

func (c *conn) cmdMRSQ(arg string) error {
	const v = "MRSQ"
	if ok, err := c.mrsqImplemented(v); !ok {
		return err
	}
	// RFC 772: every MRSQ resets the schemes, whatever its reply.
	c.mrsqReset()
	offered := strings.ToUpper(c.s.cfg.MRSQ)
	switch scheme := strings.ToUpper(arg); scheme {
	case "":
		c.mrsq = ""
		return c.reply(v, 200, "2.0.0", "OK, no scheme selected")
	case "?":
		pref := offered[:1]
		// "215 <SP> <scheme> [<SP> <arbitrary text>]": no enhanced code.
		return c.reply(v, 215, "", pref+" "+schemeText[pref])
	case "R", "T":
		if !strings.Contains(offered, scheme) {
			return c.reply(v, 501, "5.5.4", "I understand MRSQ but can't use that scheme")
		}
		c.mrsq = scheme
		return c.reply(v, 200, "2.0.0", "OK, using that scheme")
	}
	return c.reply(v, 501, "5.5.4", "Syntax: MRSQ [R | T | ?]")
}

func (c *conn) cmdMRCP(arg string) error {
	const v = "MRCP"
	if ok, err := c.mrsqImplemented(v); !ok {
		return err
	}
	if c.mrsq == "" {
		return c.reply(v, 503, "5.5.1", "No scheme specified yet; use MRSQ")
	}
	path, params, ok := parsePath(arg, "TO:")
	if !ok || path == "" || len(params) > 0 {
		return c.reply(v, 501, "5.5.4", "Syntax: MRCP TO:<path>")
	}
	if !isASCII(path) {
		return c.reply(v, 553, "5.6.7", "Non-ASCII address")
	}
	if c.mrsq == "T" && c.mrsqText == nil {
		return c.reply(v, 503, "5.5.1", "No message text stored; send MAIL first")
	}
	if c.mrsq == "R" && c.s.cfg.MRSQTable > 0 && len(c.mrsqRcpts) >= c.s.cfg.MRSQTable {
		return c.reply(v, 452, "4.5.3", "Recipient table full, this name not stored")
	}
	switch local := localPart(path); {
	case strings.HasPrefix(local, "reject"):
		return c.reply(v, 553, "5.1.1", "<"+path+">: No such user here")
	case strings.HasPrefix(local, "temp"):
		return c.reply(v, 450, "4.2.1", "<"+path+">: try later")
	}
	if c.mrsq == "R" {
		if !slices.Contains(c.mrsqRcpts, path) {
			c.mrsqRcpts = append(c.mrsqRcpts, path)
		}
		return c.reply(v, 200, "2.1.5", "OK, name stored")
	}
	t := c.mrsqText
	qid := fmt.Sprintf("Q%d", c.s.queueSeq.Add(1))
	c.s.addMessage(Message{
		Verb:       "MAIL",
		Scheme:     "T",
		From:       t.from,
		To:         []string{path},
		RcptParams: [][]string{nil},
		Data:       append([]byte(nil), t.data...),
		Via:        "MRCP",
		QueueID:    qid,
		ConnIndex:  c.idx,
		Helo:       c.helo,
		TLS:        c.tls,
		AuthUser:   c.authUser,
	})
	return c.reply(v, 250, "2.0.0", "Stored mail sent: queued as "+qid)
}

// cmdMTPMail is MAIL while an MRSQ scheme is selected (RFC 772): "MAIL
// FROM:<sender>" is answered 354 and followed by the message text. With R
// the text goes to the names stored by MRCP, which are then forgotten
// whatever the outcome; with T it is stored for the MRCPs to come.
func (c *conn) cmdMTPMail(arg string) error {
	const v = "MAIL"
	switch {
	case !c.greeted:
		return c.reply(v, 503, "5.5.1", "Error: send HELO/EHLO first")
	case c.tx != nil:
		return c.reply(v, 503, "5.5.1", "Error: nested MAIL command")
	case c.s.cfg.RequireTLS && !c.tls:
		return c.reply(v, 530, "5.7.0", "Must issue a STARTTLS command first")
	case c.s.cfg.RequireAuth && !c.authed:
		return c.reply(v, 530, "5.7.0", "Authentication required")
	}
	path, params, ok := parsePath(arg, "FROM:")
	if !ok || len(params) > 0 {
		return c.reply(v, 501, "5.5.4", "Syntax: MAIL FROM:<sender> (MRSQ "+c.mrsq+" is selected)")
	}
	t := &transaction{verb: v, scheme: c.mrsq, from: path}
	if c.mrsq == "R" {
		if len(c.mrsqRcpts) == 0 {
			return c.reply(v, 550, "5.1.3", "Null recipient")
		}
		t.to = c.mrsqRcpts
		t.rcptParams = make([][]string, len(t.to))
		c.mrsqRcpts = nil
	} else {
		c.mrsqText = nil
	}
	if err := c.reply(v, 354, "", "Type mail, ended by <CRLF>.<CRLF>"); err != nil {
		return err
	}
	c.tx = t
	wire, err := c.readDotData(t, true)
	if err != nil {
		c.record(fmt.Sprintf("C: <data %d octets, incomplete>", wire))
		return err
	}
	c.record(fmt.Sprintf("C: <data %d octets>", wire))
	if c.mrsq == "R" {
		return c.endOfData(t, "MAIL")
	}
	c.tx, c.dataWire = nil, 0
	if t.tooBig {
		return c.reply(".", 552, "5.3.4", "Error: message exceeds fixed maximum message size")
	}
	c.mrsqText = t
	return c.reply(".", 250, "2.0.0", "Mail stored")
}

// stripRoute returns path without its source route: RFC 821's
// "@A,@B:mailbox" or RFC 772's "@A,@B,mailbox". A path that does not
// parse as one is returned as it is.
func stripRoute(path string) string {
	i := 0
	for i < len(path) && path[i] == '@' {
		j := i + 1
		for j < len(path) && path[j] != ',' && path[j] != ':' {
			if path[j] == '[' {
				k := strings.IndexByte(path[j:], ']')
				if k < 0 {
					return path
				}
				j += k
			}
			j++
		}
		if j >= len(path) || j == i+1 {
			return path
		}
		if path[j] == ':' || j+1 >= len(path) || path[j+1] != '@' {
			return path[j+1:]
		}
		i = j + 1
	}
	return path
}
