package ingest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/aivis-dev/aivis/schemas"
)

// HashToken returns the hex SHA-256 of a bearer token: the form in which
// config lists producers (producers[].token_sha256).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random bearer token (128 bits of entropy).
func NewToken() string { return "aivis_" + rand.Text() }

// PrintTokenHash reads a token from the first line of in (stdin, so that it
// stays out of shell history) and writes HashToken of it to out, for a
// command that hashes an existing token.
func PrintTokenHash(out io.Writer, in io.Reader) error {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the token from standard input: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return errors.New("reading the token from standard input: got an empty line; pipe the token in (printf %s \"$TOKEN\" | ...)")
	}
	if strings.IndexFunc(token, unicode.IsSpace) >= 0 {
		return errors.New("reading the token from standard input: the token contains whitespace; bearer tokens cannot")
	}
	if _, err := fmt.Fprintln(out, HashToken(token)); err != nil {
		return fmt.Errorf("writing the token hash: %w", err)
	}
	return nil
}

// APIKeyID is the form in which an API key travels and is stored:
// "sha256:" and the hex of the first 16 bytes of its SHA-256.
func APIKeyID(rawKey string) string { return schemas.APIKeyID(rawKey) }

// authenticator maps a bearer token to a producer name.
type authenticator struct {
	anonymous bool
	names     []string
	hashes    [][sha256.Size]byte
}

func newAuthenticator(cfg Config) authenticator {
	a := authenticator{anonymous: len(cfg.Producers) == 0 && cfg.AllowAnonymous}
	for i, p := range cfg.Producers {
		var h [sha256.Size]byte
		// Validate has checked the hex already.
		_, _ = hex.Decode(h[:], []byte(strings.ToLower(p.TokenSHA256)))
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("producers[%d]", i)
		}
		a.names = append(a.names, name)
		a.hashes = append(a.hashes, h)
	}
	return a
}

// check returns the producer that the Authorization header authenticates.
func (a authenticator) check(header string) (string, bool) {
	if a.anonymous {
		return "anonymous", true
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	// Compare against every hash so that timing reveals nothing about
	// which producer, if any, matched.
	match := -1
	for i := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], a.hashes[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return a.names[match], true
}
