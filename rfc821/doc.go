// Package rfc821 speaks the historic commands of RFC 821 and RFC 772 that
// RFC 5321 dropped or deprecated, over an *smtp.Client:
//
//   - SEND, SOML and SAML in place of MAIL (RFC 821 §3.4): StartMail;
//   - TURN (RFC 821 §3.8), after which the client receives mail on the same
//     connection: Turn, Receiver, TurnHandler;
//   - MRSQ and MRCP (RFC 772), one message text for several recipients:
//     MRSQ, SendMRSQ.
//
// EXPN (Client.Expand), HELP (Client.Help), source routes (smtp.ParsePath)
// and SEND, SOML and SAML in an Envelope (Envelope.Verb) are in package
// smtp itself.
//
// # A model for extensions
//
// The package uses nothing of package smtp but its public API, and is meant
// as an example of how to add commands to the Client (ETRN, XCLIENT, ...):
//
//   - a command with a plain reply goes through a Pipeline of one
//     (Client.Pipeline, Pipeline.Cmd or CmdTimeout, Exec): the hello is sent
//     first if needed, and the reply is in Cmd.Reply, a refusal in Cmd.Err;
//   - a command whose 354 reply starts a text, as RFC 772's MAIL does under
//     MRSQ, goes through Pipeline.Data, whose writer dot-stuffs the
//     text through the Client's own data phase;
//   - a command after which the connection stops being an SMTP client's,
//     as TURN does, takes it over with Pipeline.Hijack.
//
// Errors from the server are *smtp.Error values, as everywhere in package
// smtp.
package rfc821
