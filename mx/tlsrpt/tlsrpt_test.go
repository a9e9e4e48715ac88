package tlsrpt

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The report of RFC 8460 §4.4: per policy, the session counts and the
// failures by result type, MX and address; a report forgets what it
// reported.
func TestAggregator_Report(t *testing.T) {
	var a Aggregator
	sts := []string{"version: STSv1", "mode: enforce", "mx: mx.example.org", "max_age: 86400"}
	for range 3 {
		a.Add(Result{Domain: "Example.ORG", PolicyType: PolicySTS, Policy: sts, MXHost: "mx.example.org", ReceivingIP: "192.0.2.1"})
	}
	a.Add(Result{Domain: "example.org", PolicyType: PolicySTS, Policy: sts, MXHost: "mx.example.org", ReceivingIP: "192.0.2.1", ResultType: CertificateExpired, Reason: "x509: expired"})
	a.Add(Result{Domain: "example.org", PolicyType: PolicySTS, Policy: sts, MXHost: "mx.example.org", ReceivingIP: "192.0.2.1", ResultType: CertificateExpired, Reason: "x509: expired"})
	a.Add(Result{Domain: "example.org", PolicyType: PolicySTS, ResultType: STSPolicyFetchError, Reason: "HTTP 404"})
	a.Add(Result{Domain: "other.example", PolicyType: PolicyNotFound, MXHost: "mx.other.example"})

	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	r := a.Report("example.org", "resmtp test", "postmaster@client.example", "2026-12-03T00:00:00Z_example.org", start, start.Add(24*time.Hour))
	require.NotNil(t, r)
	data, err := r.JSON()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	assert.Equal(t, "resmtp test", doc["organization-name"])
	assert.Equal(t, "2026-12-03T00:00:00Z", doc["date-range"].(map[string]any)["start-datetime"])
	policies := doc["policies"].([]any)
	require.Len(t, policies, 2, "the policy, and the failed fetch of it")
	var enforced map[string]any
	for _, p := range policies {
		if pm := p.(map[string]any); pm["policy"].(map[string]any)["policy-string"] != nil {
			enforced = pm
		}
	}
	require.NotNil(t, enforced)
	assert.Equal(t, "sts", enforced["policy"].(map[string]any)["policy-type"])
	assert.Equal(t, []any{"mx.example.org"}, enforced["policy"].(map[string]any)["mx-host"])
	summary := enforced["summary"].(map[string]any)
	assert.EqualValues(t, 3, summary["total-successful-session-count"])
	assert.EqualValues(t, 2, summary["total-failure-session-count"])
	details := enforced["failure-details"].([]any)
	require.Len(t, details, 1)
	d := details[0].(map[string]any)
	assert.Equal(t, "certificate-expired", d["result-type"])
	assert.EqualValues(t, 2, d["failed-session-count"])
	assert.Equal(t, "192.0.2.1", d["receiving-ip"])

	assert.Nil(t, a.Report("example.org", "", "", "", start, start), "reported once")
	assert.NotNil(t, a.Report("other.example", "", "", "", start, start))
}
