package smtp

import (
	"context"
	"crypto/tls"
	"log/slog"
)

// SlogTrace returns a ClientTrace that logs a Client's life to l, as
// structured records: commands and replies at Debug (the arguments of AUTH
// and the client's answers in an AUTH exchange are redacted before any
// hook sees them, so no credential is logged), connections, handshakes
// and restarts at Info, and failures at Warn. DataProgress is not logged.
// Compose it with a trace of your own through WithClientTrace.
func SlogTrace(l *slog.Logger) *ClientTrace {
	ctx := context.Background()
	return &ClientTrace{
		CommandSent: func(line string) {
			l.LogAttrs(ctx, slog.LevelDebug, "smtp command", slog.String("line", line))
		},
		ReplyRead: func(r *Reply) {
			l.LogAttrs(ctx, slog.LevelDebug, "smtp reply", slog.Int("code", r.Code), slog.String("enhanced", r.Enhanced.String()), slog.String("text", r.Text()))
		},
		TLSHandshakeDone: func(state tls.ConnectionState, err error) {
			if err != nil {
				l.LogAttrs(ctx, slog.LevelWarn, "smtp tls handshake failed", slog.Any("err", err))
				return
			}
			l.LogAttrs(ctx, slog.LevelInfo, "smtp tls", slog.String("version", tls.VersionName(state.Version)),
				slog.String("cipher", tls.CipherSuiteName(state.CipherSuite)), slog.String("server", state.ServerName))
		},
		Connected: func(addr string, attempt int) {
			l.LogAttrs(ctx, slog.LevelInfo, "smtp connected", slog.String("addr", addr), slog.Int("attempt", attempt))
		},
		AttemptFailed: func(addr string, err error) {
			l.LogAttrs(ctx, slog.LevelWarn, "smtp attempt failed", slog.String("addr", addr), slog.Any("err", err))
		},
		Resumed: func(offset int64, err error) {
			if err != nil {
				l.LogAttrs(ctx, slog.LevelWarn, "smtp restart offset refused", slog.Int64("offset", offset), slog.Any("err", err))
				return
			}
			l.LogAttrs(ctx, slog.LevelInfo, "smtp resumed", slog.Int64("offset", offset))
		},
		StoreFailed: func(op, transID string, err error) {
			l.LogAttrs(ctx, slog.LevelWarn, "smtp checkpoint store failed", slog.String("op", op), slog.String("transid", transID), slog.Any("err", err))
		},
	}
}
