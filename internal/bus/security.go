package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/aivis-dev/aivis/internal/security"
)

// The SASL mechanisms aivis speaks to brokers.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// SASL configures SASL authentication to the brokers. An empty mechanism
// means none.
type SASL struct {
	Mechanism string `koanf:"mechanism" help:"SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (empty: no SASL); use it with kafka.tls"`
	Username  string `koanf:"username" help:"SASL user name"`
	// Password is best given as AIVIS_KAFKA__SASL__PASSWORD or in
	// PasswordFile: a flag shows in ps, and a file in config is often
	// committed.
	Password     string `koanf:"password" help:"SASL password; prefer password_file or AIVIS_KAFKA__SASL__PASSWORD"`
	PasswordFile string `koanf:"password_file" help:"file holding the SASL password (a trailing newline is ignored)"`
}

// LogValue keeps the password out of logs.
func (s SASL) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", s.Mechanism), slog.String("username", s.Username),
		slog.Bool("password_set", s.Password != "" || s.PasswordFile != ""))
}

// Security is how every client of a process reaches the brokers: TLS,
// SASL, or both (SASL_SSL, what production clusters run).
type Security struct {
	TLS  security.ClientTLS `koanf:"tls"`
	SASL SASL               `koanf:"sasl"`
}

// Validate returns every problem, each with its key path under "kafka.".
func (s Security) Validate() []error {
	errs := s.TLS.Validate("kafka.tls")
	switch strings.ToUpper(s.SASL.Mechanism) {
	case "":
		if s.SASL.Username != "" || s.SASL.Password != "" || s.SASL.PasswordFile != "" {
			errs = append(errs, errors.New("kafka.sasl.mechanism: empty, but a user name or password is set; set SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"))
		}
		return errs
	case SCRAMSHA256, SCRAMSHA512, Plain:
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", s.SASL.Mechanism))
	}
	if s.SASL.Username == "" {
		errs = append(errs, errors.New("kafka.sasl.username: required with a SASL mechanism"))
	}
	pw, err := security.Secret("kafka.sasl.password", s.SASL.Password, s.SASL.PasswordFile)
	switch {
	case err != nil:
		errs = append(errs, err)
	case pw == "":
		errs = append(errs, errors.New("kafka.sasl.password: required with a SASL mechanism; give it as password_file or AIVIS_KAFKA__SASL__PASSWORD"))
	}
	if !s.TLS.On() && strings.ToUpper(s.SASL.Mechanism) == Plain {
		errs = append(errs, errors.New("kafka.sasl.mechanism: PLAIN sends the password in the clear; enable kafka.tls as well"))
	}
	return errs
}

// Options returns the client options that apply s: a TLS dialer and a
// SASL mechanism. The password file is read here, so a rotated password is
// picked up by the next process start.
func (s Security) Options() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tc, err := s.TLS.Config("kafka.tls")
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.Dialer(tlsDialer(tc)))
	}
	mech := strings.ToUpper(s.SASL.Mechanism)
	if mech == "" {
		return opts, nil
	}
	pw, err := security.Secret("kafka.sasl.password", s.SASL.Password, s.SASL.PasswordFile)
	if err != nil {
		return nil, err
	}
	var m sasl.Mechanism
	switch mech {
	case SCRAMSHA256:
		m = scram.Auth{User: s.SASL.Username, Pass: pw}.AsSha256Mechanism()
	case SCRAMSHA512:
		m = scram.Auth{User: s.SASL.Username, Pass: pw}.AsSha512Mechanism()
	case Plain:
		m = plain.Auth{User: s.SASL.Username, Pass: pw}.AsMechanism()
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism: %q must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", s.SASL.Mechanism)
	}
	return append(opts, kgo.SASL(m)), nil
}

// tlsDialer dials TLS with the host of the address as the server name
// unless the config names one, so that one config serves every broker.
func tlsDialer(tc *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		c := tc.Clone()
		if c.ServerName == "" {
			if h, _, err := net.SplitHostPort(host); err == nil {
				c.ServerName = h
			}
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: c}
		return d.DialContext(ctx, network, host)
	}
}

// Refused reports whether err says that the brokers refused this client's
// credentials or TLS, which retrying cannot fix.
func Refused(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	return errors.As(err, &recErr) || errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) || errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) ||
		plaintextToTLS(err)
}

// plaintextToTLS reports whether a plaintext client got a TLS alert back:
// franz-go says so only in its message, as a response size far too large.
func plaintextToTLS(err error) bool {
	return err != nil && strings.Contains(err.Error(), "appear to be a tls alert record")
}

// Explain adds to an error from the brokers what in kafka.tls or
// kafka.sasl to check, when the error points there.
func (s Security) Explain(err error) error {
	if err == nil {
		return nil
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Errorf("%w (the brokers refused user %q with %s: check kafka.sasl.username, kafka.sasl.password or password_file, and kafka.sasl.mechanism)", err, s.SASL.Username, s.SASL.Mechanism)
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("%w (the listener does not accept kafka.sasl.mechanism %q: use one it enables, or point kafka.brokers at a listener with SASL)", err, s.SASL.Mechanism)
	case errors.As(err, &certErr):
		return fmt.Errorf("%w (the broker's certificate is not trusted: set kafka.tls.ca_file to the CA that signed it, or kafka.tls.server_name to the name it carries)", err)
	case errors.As(err, &recErr):
		return fmt.Errorf("%w (the listener does not speak TLS: unset kafka.tls, or point kafka.brokers at its TLS listener)", err)
	case plaintextToTLS(err), closed(err) && !s.TLS.On():
		return fmt.Errorf("%w (the broker closed the connection: if its listener is SSL or SASL_SSL, set kafka.tls.enabled and kafka.tls.ca_file, and kafka.sasl for SASL_SSL)", err)
	case closed(err) && s.SASL.Mechanism == "":
		return fmt.Errorf("%w (the broker closed the connection: if its listener is SASL_SSL, set kafka.sasl)", err)
	}
	return err
}

func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
