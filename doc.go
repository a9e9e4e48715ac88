// Package smtp is an SMTP client: a drop-in replacement for net/smtp with
// contexts, timeouts, RFC 2920 pipelining and RFC 1845 checkpoint/restart.
package smtp
