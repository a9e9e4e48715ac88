package smtp

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net"

	"github.com/emersion/go-sasl"
)

// Auth is implemented by an SMTP authentication mechanism.
type Auth interface {
	// Start begins an authentication with a server.
	// It returns the name of the authentication protocol
	// and optionally data to include in the initial AUTH message
	// sent to the server.
	// If it returns a non-nil error, the SMTP client aborts
	// the authentication attempt and closes the connection.
	Start(server *ServerInfo) (proto string, toServer []byte, err error)

	// Next continues the authentication. The server has just sent
	// the fromServer data. If more is true, the server expects a
	// response, which Next should return as toServer; otherwise
	// Next should return toServer == nil.
	// If Next returns a non-nil error, the SMTP client aborts
	// the authentication attempt and closes the connection.
	Next(fromServer []byte, more bool) (toServer []byte, err error)
}

// ServerInfo records information about an SMTP server.
type ServerInfo struct {
	Name string   // SMTP server name
	TLS  bool     // using TLS, with valid certificate for Name
	Auth []string // advertised authentication mechanisms
}

type plainAuth struct {
	identity, username, password string
	host                         string
}

// PlainAuth returns an [Auth] that implements the PLAIN authentication
// mechanism as defined in RFC 4616. The returned Auth uses the given
// username and password to authenticate to host and act as identity.
// Usually identity should be the empty string, to act as username.
//
// PlainAuth will only send the credentials if the connection is using TLS
// or is connected to localhost. Otherwise authentication will fail with an
// error, without sending the credentials.
func PlainAuth(identity, username, password, host string) Auth {
	return &plainAuth{identity, username, password, host}
}

func isLocalhost(name string) bool {
	return name == "localhost" || name == "127.0.0.1" || name == "::1"
}

func (a *plainAuth) Start(server *ServerInfo) (string, []byte, error) {
	// Without TLS nothing in ServerInfo can be trusted, not even a server
	// that says PLAIN is fine: it may be an attacker asking for the password.
	if !server.TLS && !isLocalhost(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	resp := []byte(a.identity + "\x00" + a.username + "\x00" + a.password)
	return "PLAIN", resp, nil
}

func (a *plainAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if more {
		// Everything was sent in the initial response.
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

type cramMD5Auth struct {
	username, secret string
}

// CRAMMD5Auth returns an [Auth] that implements the CRAM-MD5 authentication
// mechanism as defined in RFC 2195.
// The returned Auth uses the given username and secret to authenticate
// to the server using the challenge-response mechanism.
func CRAMMD5Auth(username, secret string) Auth {
	return &cramMD5Auth{username, secret}
}

func (a *cramMD5Auth) Start(server *ServerInfo) (string, []byte, error) {
	return "CRAM-MD5", nil, nil
}

func (a *cramMD5Auth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	mac := hmac.New(md5.New, []byte(a.secret))
	mac.Write(fromServer)
	return fmt.Appendf(nil, "%s %x", a.username, mac.Sum(nil)), nil
}

// SASLAuth adapts any github.com/emersion/go-sasl client (PLAIN, LOGIN,
// OAUTHBEARER, EXTERNAL, ANONYMOUS, or XOAuth2Client from this package) to
// the Auth interface, for Client.Auth and SendMail.
//
// An empty, non-nil initial response is sent as "=" (RFC 4954 §4). Like
// PlainAuth, the adapter refuses to send the cleartext credentials of PLAIN,
// LOGIN, XOAUTH2 and OAUTHBEARER over a connection without TLS unless the
// server is on the loopback interface: Start then fails with an error and
// nothing is sent.
func SASLAuth(c sasl.Client) Auth {
	return &saslAuth{c: c}
}

type saslAuth struct {
	c sasl.Client
}

func (a *saslAuth) Start(server *ServerInfo) (string, []byte, error) {
	mech, ir, err := a.c.Start()
	if err != nil {
		return "", nil, err
	}
	switch mech {
	case sasl.Plain, sasl.Login, sasl.OAuthBearer, xoauth2:
		if !server.TLS && !isLoopback(server.Name) {
			return "", nil, fmt.Errorf("smtp: refusing to send %s credentials over an unencrypted connection", mech)
		}
	}
	return mech, ir, nil
}

func (a *saslAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	resp, err := a.c.Next(fromServer)
	if err == nil && resp == nil {
		resp = []byte{} // an empty response is still a response to a 334
	}
	return resp, err
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// xoauth2 is the name of the XOAUTH2 SASL mechanism used by Gmail and
// Microsoft 365.
const xoauth2 = "XOAUTH2"

// XOAuth2Client returns a go-sasl client for the XOAUTH2 mechanism: the
// initial response is "user=" username ^A "auth=Bearer " token ^A ^A. If the
// server rejects the token it sends a 334 challenge holding a JSON error; the
// client answers it with an empty response, and the server then fails the
// exchange with 535 or 454, which AuthContext returns as an *Error (and
// Auth as a *textproto.Error).
func XOAuth2Client(username, token string) sasl.Client {
	return &xoauth2Client{username: username, token: token}
}

type xoauth2Client struct {
	username, token string
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return xoauth2, []byte("user=" + c.username + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

// Auth authenticates a client using the provided authentication mechanism.
// A failed authentication closes the connection.
// Only servers that advertise the AUTH extension support this function.
//
// Auth returns the mechanism's error, or a *textproto.Error with the
// server's reply (535, enhanced code 5.7.8 for bad credentials, RFC 4954
// §6; AuthContext returns it as an *Error). As in
// net/smtp, after a failure the client sends "*" and QUIT and closes the
// connection. Credentials never reach a ClientTrace hook.
func (c *Client) Auth(a Auth) error {
	return c.compatErr(c.AuthContext(context.Background(), a))
}

// AuthContext is Auth bounded by ctx.
func (c *Client) AuthContext(ctx context.Context, a Auth) error {
	if err := c.hello(ctx); err != nil {
		return err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	return end(c.authenticate(a))
}

func (c *Client) authenticate(a Auth) error {
	mech, resp, err := a.Start(&ServerInfo{c.serverName, c.tls, c.auth})
	if err == nil {
		err = validateLine(mech)
	}
	if err != nil {
		c.quit()
		return err
	}
	cmd := command{verb: "AUTH", timeout: c.timeouts.Command, secret: true}
	line, traced := "AUTH "+mech, "AUTH "+mech
	if len(resp) > 0 {
		line += " " + base64.StdEncoding.EncodeToString(resp)
		traced += " " + redacted
	} else if _, ok := a.(*saslAuth); ok && resp != nil {
		line += " =" // RFC 4954 §4: an empty initial response
		traced += " ="
	}
	x, err := c.queue(cmd, traced, "%s", line)
	for err == nil {
		if err = c.await(x); err != nil {
			break // the connection failed
		}
		rep := x.Reply
		var msg []byte
		switch rep.Code {
		case 334:
			msg, err = base64.StdEncoding.DecodeString(rep.msg())
		case 235:
			// The last message isn't base64 because it isn't a challenge.
			msg, err = []byte(rep.msg()), nil
		default:
			err = rep.err()
		}
		if err == nil {
			resp, err = a.Next(msg, rep.Code == 334)
		}
		if err != nil {
			// Abort the exchange and end the session, as net/smtp does.
			if c.err == nil {
				c.roundTrip(command{verb: "*", expect: 501, timeout: c.timeouts.Command}, "*")
				c.quit()
			}
			break
		}
		if resp == nil {
			break
		}
		x, err = c.queue(cmd, redacted, "%s", base64.StdEncoding.EncodeToString(resp))
	}
	return err
}

// quit sends QUIT and closes the connection, within a call in progress.
func (c *Client) quit() {
	if c.err != nil {
		return
	}
	c.roundTrip(command{verb: "QUIT", expect: 221, timeout: c.timeouts.Command}, "QUIT")
	if c.err == nil {
		c.err = ErrClosed
	}
	c.Text.Close()
}
