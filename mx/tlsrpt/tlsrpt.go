// Package tlsrpt collects the outcome of TLS sessions to mail exchangers
// in the terms of SMTP TLS Reporting (RFC 8460) and aggregates them into
// the JSON report of §4.4 for a policy domain and a period.
//
// Sending the report is the caller's choice: look up the domain's
// "_smtp._tls" TXT record ("v=TLSRPTv1; rua=mailto:...,https://..."), then
// POST the gzip-compressed JSON with media type application/tlsrpt+gzip to
// an https URI, or mail it as a multipart/report with a
// application/tlsrpt+gzip part (RFC 8460 §5); the Sender and Pool of
// package smtp can send that mail.
package tlsrpt

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// Policy types (RFC 8460 §4.4, "policy-type").
const (
	PolicyTLSA     = "tlsa"
	PolicySTS      = "sts"
	PolicyNotFound = "no-policy-found"
)

// Result types of failures (RFC 8460 §4.3).
const (
	StartTLSNotSupported    = "starttls-not-supported"
	CertificateHostMismatch = "certificate-host-mismatch"
	CertificateExpired      = "certificate-expired"
	CertificateNotTrusted   = "certificate-not-trusted"
	ValidationFailure       = "validation-failure"
	TLSAInvalid             = "tlsa-invalid"
	DNSSECInvalid           = "dnssec-invalid"
	DANERequired            = "dane-required"
	STSPolicyFetchError     = "sts-policy-fetch-error"
	STSPolicyInvalid        = "sts-policy-invalid"
	STSWebPKIInvalid        = "sts-webpki-invalid"
)

// A Result is the outcome of one session, or of one attempt to have a
// policy, for a policy domain.
type Result struct {
	Domain string // the policy domain: the recipient domain
	// PolicyType is PolicyTLSA, PolicySTS or PolicyNotFound, and Policy
	// its text (the TLSA records, or the MTA-STS policy's lines).
	PolicyType string
	Policy     []string
	MXHost     string // the receiving MX host name, if any
	// ReceivingIP and SendingIP are the addresses of the session, if any.
	ReceivingIP, SendingIP string
	// ResultType is "" for a successful session, else one of the result
	// types above.
	ResultType string
	// Reason is a free text for a failure ("additional-information").
	Reason string
}

// An Aggregator counts Results for reports. It is safe for concurrent use;
// the zero value is ready.
type Aggregator struct {
	mu      sync.Mutex
	domains map[string]*domainCounts
}

type policyKey struct{ typ, text, domain string }

type domainCounts struct {
	policies map[policyKey]*policyCounts
}

type policyCounts struct {
	mx       map[string]bool
	ok, fail int64
	failures map[failureKey]int64
}

type failureKey struct{ result, sendingIP, mx, receivingIP, reason string }

// Add counts r.
func (a *Aggregator) Add(r Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	domain := strings.ToLower(r.Domain)
	if a.domains == nil {
		a.domains = map[string]*domainCounts{}
	}
	d := a.domains[domain]
	if d == nil {
		d = &domainCounts{policies: map[policyKey]*policyCounts{}}
		a.domains[domain] = d
	}
	k := policyKey{r.PolicyType, strings.Join(r.Policy, "\n"), domain}
	p := d.policies[k]
	if p == nil {
		p = &policyCounts{mx: map[string]bool{}, failures: map[failureKey]int64{}}
		d.policies[k] = p
	}
	if r.MXHost != "" {
		p.mx[r.MXHost] = true
	}
	if r.ResultType == "" {
		p.ok++
		return
	}
	p.fail++
	p.failures[failureKey{r.ResultType, r.SendingIP, r.MXHost, r.ReceivingIP, r.Reason}]++
}

// Report is the JSON report of RFC 8460 §4.4.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyReport `json:"policies"`
}

// DateRange is the period a report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyReport is the part of a report about one policy.
type PolicyReport struct {
	Policy struct {
		Type   string   `json:"policy-type"`
		String []string `json:"policy-string,omitempty"`
		Domain string   `json:"policy-domain"`
		MXHost []string `json:"mx-host,omitempty"`
	} `json:"policy"`
	Summary struct {
		Successful int64 `json:"total-successful-session-count"`
		Failed     int64 `json:"total-failure-session-count"`
	} `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// FailureDetail counts the sessions of one failure.
type FailureDetail struct {
	ResultType   string `json:"result-type"`
	SendingIP    string `json:"sending-mta-ip,omitempty"`
	ReceivingMX  string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP  string `json:"receiving-ip,omitempty"`
	Count        int64  `json:"failed-session-count"`
	AdditionalIn string `json:"additional-information,omitempty"`
}

// Report returns the report for domain over [start, end), from what was
// Added, and forgets it, so that the next report starts afresh. It returns
// nil when nothing was Added for domain. Marshal it with encoding/json.
func (a *Aggregator) Report(domain, organization, contact, id string, start, end time.Time) *Report {
	a.mu.Lock()
	d := a.domains[strings.ToLower(domain)]
	delete(a.domains, strings.ToLower(domain))
	a.mu.Unlock()
	if d == nil {
		return nil
	}
	r := &Report{OrganizationName: organization, ContactInfo: contact, ReportID: id, DateRange: DateRange{start.UTC(), end.UTC()}}
	for k, p := range d.policies {
		var pr PolicyReport
		pr.Policy.Type, pr.Policy.Domain = k.typ, k.domain
		if k.text != "" {
			pr.Policy.String = strings.Split(k.text, "\n")
		}
		for mx := range p.mx {
			pr.Policy.MXHost = append(pr.Policy.MXHost, mx)
		}
		slices.Sort(pr.Policy.MXHost)
		pr.Summary.Successful, pr.Summary.Failed = p.ok, p.fail
		for f, n := range p.failures {
			pr.FailureDetails = append(pr.FailureDetails, FailureDetail{ResultType: f.result, SendingIP: f.sendingIP,
				ReceivingMX: f.mx, ReceivingIP: f.receivingIP, Count: n, AdditionalIn: f.reason})
		}
		slices.SortFunc(pr.FailureDetails, func(x, y FailureDetail) int {
			return strings.Compare(x.ResultType+x.ReceivingMX, y.ResultType+y.ReceivingMX)
		})
		r.Policies = append(r.Policies, pr)
	}
	slices.SortFunc(r.Policies, func(x, y PolicyReport) int { return strings.Compare(x.Policy.Type, y.Policy.Type) })
	return r
}

// JSON returns r as JSON.
func (r *Report) JSON() ([]byte, error) { return json.Marshal(r) }
