package smtp

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// Every way of sending reports progress by one definition (data.go):
// canonical octets written, a total that is the canonical size or -1, and
// (size, size) as the last call. The message is 110,000 octets of LF-only
// text, 111,000 in canonical form.
func TestDataProgress_SameForEveryWayOfSending(t *testing.T) {
	line := strings.Repeat("x", 109) + "\n"
	msg := strings.Repeat(line, 1000)
	const canonical = 111000
	require.Len(t, msg, 110000)
	env := func() *Envelope { return &Envelope{From: "a@example.org", To: Recipients("b@example.com")} }
	tests := []struct {
		name string
		ext  []string
		mrsq string
		send func(ctx context.Context, d *Dialer, srv *smtptest.Server) error
	}{
		{"Data", extPipelining, "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			c := dialTest(t, srv, d)
			return sendOne(ctx, c, "a@example.org", []string{"b@example.com"}, msg)
		}},
		{"Send, DATA", extPipelining, "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			_, err := dialTest(t, srv, d).Send(ctx, env(), strings.NewReader(msg))
			return err
		}},
		{"Send, DATA, a reader of unknown length", extPipelining, "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			_, err := dialTest(t, srv, d).Send(ctx, env(), onlyReader{strings.NewReader(msg)})
			return err
		}},
		{"Send, BDAT", extChunking, "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			d.ChunkSize = 16 << 10
			_, err := dialTest(t, srv, d).Send(ctx, env(), strings.NewReader(msg))
			return err
		}},
		{"Send, lockstep", extLockstep[:3], "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			_, err := dialTest(t, srv, d).Send(ctx, env(), strings.NewReader(msg))
			return err
		}},
		{"Batch", extPipelining, "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			b, err := dialTest(t, srv, d).NewBatch(ctx)
			if err != nil {
				return err
			}
			var sendErr error
			if err := b.Send(env(), strings.NewReader(msg), func(_ *Result, err error) { sendErr = err }); err != nil {
				return err
			}
			if err := b.Quit(); err != nil {
				return err
			}
			return sendErr
		}},
		{"Courier", append([]string{"CHECKPOINT"}, extPipelining...), "", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			_, err := testCourier(d).Send(ctx, []string{srv.Addr}, env(), strings.NewReader(msg))
			return err
		}},
		{"Pipeline.Data, RFC 772 MAIL under MRSQ T", []string{"ENHANCEDSTATUSCODES"}, "T", func(ctx context.Context, d *Dialer, srv *smtptest.Server) error {
			return sendMRSQText(ctx, dialTest(t, srv, d), "a@example.org", "b@example.com", msg)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: tt.ext, MRSQ: tt.mrsq})
			var calls [][2]int64
			d := &Dialer{Trace: &ClientTrace{DataProgress: func(w, total int64) { calls = append(calls, [2]int64{w, total}) }}}
			require.NoError(t, tt.send(context.Background(), d, srv))
			require.NotEmpty(t, calls)
			assert.Equal(t, [2]int64{canonical, canonical}, calls[len(calls)-1], "the last call")
			for i, c := range calls {
				assert.True(t, c[1] == -1 || c[1] == canonical, "call %d: total %d is neither -1 nor the canonical size", i, c[1])
				assert.LessOrEqual(t, c[0], int64(canonical), "call %d", i)
				if i > 0 {
					assert.GreaterOrEqual(t, c[0], calls[i-1][0], "call %d: progress went back", i)
				}
			}
			require.Len(t, srv.Messages(), 1)
			assert.Len(t, srv.Messages()[0].Data, canonical)
		})
	}
}

var _ io.Reader = onlyReader{}

// sendMRSQText sends body to one recipient as RFC 772 Appendix B does, the
// text through Pipeline.Data: MRSQ T, "MAIL FROM:<from>" answered 354, the
// text, then MRCP delivers it, and MRSQ resets.
func sendMRSQText(ctx context.Context, c *Client, from, to, body string) error {
	p := c.Pipeline()
	sel := p.Cmd(200, "MRSQ T")
	if err := p.Exec(ctx); err != nil {
		return err
	}
	if sel.Err != nil {
		return sel.Err
	}
	w, err := c.Pipeline().Data(ctx, "MAIL FROM:<"+from+">")
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	p = c.Pipeline()
	mrcp := p.Cmd(2, "MRCP TO:<%s>", to)
	if err := p.Exec(ctx); err != nil {
		return err
	}
	if mrcp.Err != nil {
		return mrcp.Err
	}
	p = c.Pipeline()
	reset := p.Cmd(200, "MRSQ")
	if err := p.Exec(ctx); err != nil {
		return err
	}
	return reset.Err
}
