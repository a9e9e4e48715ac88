package mtasts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// isCertError reports whether err is a failure to verify the server's
// certificate.
func isCertError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verifyErr)
}
