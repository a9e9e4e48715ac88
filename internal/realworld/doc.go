// Package realworld checks that real, published programs written against
// net/smtp behave the same when their import of "net/smtp" is swapped for
// smtp "github.com/resmtp/smtp", on the paths where such programs depend on
// the exact error values net/smtp returns (io.EOF after a server closed an
// idle connection, *textproto.Error for a refused command, a net.Error
// timeout from a deadline the caller set on its own net.Conn).
//
// The package holds only tests. For each third-party module (pinned in
// realworld_test.go) the tests fetch it through the Go module proxy into a
// temporary directory, build the scenario program in testdata/<name> (plus
// testdata/report.go) twice — against the module as published, and against
// a copy with its "net/smtp" import lines rewritten and a replace directive
// pointing github.com/resmtp/smtp at this repository — run both binaries
// against an in-process internal/smtptest server on loopback, and require
// the two builds' outcomes (error types, values and texts, delivered
// copies, connections used) to be equal. The modules' own test suites are
// run with the swapped import as well.
//
// Because they need the module proxy, the tests skip unless
// RESMTP_REALWORLD=1 is set:
//
//	RESMTP_REALWORLD=1 go test -run '^TestRealWorld' -v -count=1 ./internal/realworld/
package realworld
