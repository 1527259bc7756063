package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SecureBroker is the SASL_SSL listener of the test broker: SCRAM users
// over TLS, as deploy/scripts/kafka.sh configures it.
type SecureBroker struct {
	Brokers []string
	// CAFile signed the broker's certificate.
	CAFile         string
	User, Password string
}

// SecureKafka returns the SASL_SSL listener of the test broker, from
// AIVISDEV_KAFKA_SASL_BROKERS, or else the port two above the first of
// KafkaBrokers (kafka.sh's default); the CA from AIVISDEV_KAFKA_CA_FILE or
// KafkaDir()/tls/ca.pem, and the user from AIVISDEV_KAFKA_SASL_USER and
// AIVISDEV_KAFKA_SASL_PASSWORD or kafka.sh's defaults. A listener that does
// not answer with those credentials skips the test locally and fails it
// under CI=true.
func SecureKafka(t testing.TB) SecureBroker {
	t.Helper()
	b := SecureBroker{
		CAFile:   envOr("AIVISDEV_KAFKA_CA_FILE", filepath.Join(KafkaDir(), "tls", "ca.pem")),
		User:     envOr("AIVISDEV_KAFKA_SASL_USER", "aivis"),
		Password: envOr("AIVISDEV_KAFKA_SASL_PASSWORD", "aivis-dev-password"),
	}
	if v := os.Getenv("AIVISDEV_KAFKA_SASL_BROKERS"); v != "" {
		b.Brokers = strings.Split(v, ",")
	} else if host, port, err := net.SplitHostPort(KafkaBrokers()[0]); err == nil {
		n, _ := strconv.Atoi(port)
		b.Brokers = []string{net.JoinHostPort(host, strconv.Itoa(n+2))}
	}
	err := b.ping(10 * time.Second)
	if errors.Is(err, kerr.SaslAuthenticationFailed) {
		// A data dir formatted before kafka.sh made the SCRAM user, or
		// with another password: add it through the PLAINTEXT listener.
		if err = b.addUser(); err == nil {
			err = b.ping(10 * time.Second)
		}
	}
	RequireOrSkip(t, "the SASL_SSL listener of the Kafka broker at "+strings.Join(b.Brokers, ","), err,
		"start the broker with `make kafka-up` (deploy/scripts/kafka.sh up; a broker started by an older kafka.sh has no SASL_SSL listener: `kafka.sh restart`), or set AIVISDEV_KAFKA_SASL_BROKERS and AIVISDEV_KAFKA_CA_FILE")
	return b
}

// addUser creates or updates the SCRAM user, both mechanisms, through the
// PLAINTEXT listener of KafkaBrokers.
func (b SecureBroker) addUser() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(KafkaBrokers()...), kgo.DialTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One request per mechanism: a request may name a user only once.
	for _, m := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
		res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil,
			[]kadm.UpsertSCRAM{{User: b.User, Mechanism: m, Iterations: 8192, Password: b.Password}})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("adding SCRAM user %s (%s) through the PLAINTEXT listener: %w", b.User, m, err)
		}
	}
	// The credentials reach the SASL listener through the metadata log.
	time.Sleep(time.Second)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (b SecureBroker) ping(timeout time.Duration) error {
	if len(b.Brokers) == 0 {
		return errors.New("no SASL_SSL address")
	}
	pem, err := os.ReadFile(b.CAFile)
	if err != nil {
		return fmt.Errorf("reading the broker's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no certificate", b.CAFile)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.Brokers...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: b.User, Pass: b.Password}.AsSha512Mechanism()),
		kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(1),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return cl.Ping(ctx)
}
