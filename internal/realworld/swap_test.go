package realworld

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSwapImportRewritesOnlyTheNetSMTPImport(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"grouped",
			"package p\n\nimport (\n\t\"io\"\n\t\"net/smtp\" // mail\n)\n\nvar _ = smtp.SendMail\n",
			"package p\n\nimport (\n\t\"io\"\n\tsmtp \"github.com/resmtp/smtp\" // mail\n)\n\nvar _ = smtp.SendMail\n"},
		{"named",
			"package p\n\nimport gosmtp \"net/smtp\"\n",
			"package p\n\nimport gosmtp \"github.com/resmtp/smtp\"\n"},
		{"raw string",
			"package p\n\nimport `net/smtp`\n",
			"package p\n\nimport smtp \"github.com/resmtp/smtp\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, changed, err := swapImport("x.go", []byte(tc.src))
			require.NoError(t, err)
			assert.True(t, changed)
			assert.Equal(t, tc.want, string(out))
		})
	}
	src := "package p\n\nimport \"net/smtpx\"\n\n// \"net/smtp\"\nvar s = \"net/smtp\"\n"
	out, changed, err := swapImport("y.go", []byte(src))
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, src, string(out))
}
