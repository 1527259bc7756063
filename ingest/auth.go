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
	"path"
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

// authenticator maps a bearer token to the producer it belongs to. A
// producer may have several tokens (rotation: the old and the new one are
// both valid until the old one is removed).
type authenticator struct {
	anonymous bool
	grants    []*access
	hashes    [][sha256.Size]byte
	owner     []int // owner[i] is the access of hashes[i]
}

// access is what a token allows: reporting as one producer, for the
// sources and teams of its scope (empty: any).
type access struct {
	name    string
	sources []string
	teams   []string
}

var anonymous = &access{name: "anonymous"}

func newAuthenticator(cfg Config) authenticator {
	a := authenticator{anonymous: len(cfg.Producers) == 0 && cfg.AllowAnonymous}
	for i, p := range cfg.Producers {
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("producers[%d]", i)
		}
		a.grants = append(a.grants, &access{name: name, sources: p.Sources, teams: p.Teams})
		for _, t := range p.tokenHashes() {
			var h [sha256.Size]byte
			// Validate has checked the hex already.
			_, _ = hex.Decode(h[:], []byte(strings.ToLower(t)))
			a.hashes = append(a.hashes, h)
			a.owner = append(a.owner, len(a.grants)-1)
		}
	}
	return a
}

// check returns the producer that the Authorization header authenticates.
func (a authenticator) check(header string) (string, bool) {
	g, ok := a.lookup(header)
	if !ok {
		return "", false
	}
	return g.name, true
}

// lookup returns the access of the token in the Authorization header.
func (a authenticator) lookup(header string) (*access, bool) {
	if a.anonymous {
		return anonymous, true
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, false
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
		return nil, false
	}
	return a.grants[a.owner[match]], true
}

// scoped reports whether the access limits what it may report for.
func (g *access) scoped() bool { return len(g.sources) > 0 || len(g.teams) > 0 }

// scopeProblems lists what of e lies outside the access's scope: its source
// when sources are listed, its team label when teams are listed (a
// team-scoped token must name the team, so that no ownership rule can
// attribute its events elsewhere by default).
func (g *access) scopeProblems(e *schemas.Event) []schemas.FieldError {
	var probs []schemas.FieldError
	if len(g.sources) > 0 && !matchAny(g.sources, e.Source) {
		probs = append(probs, schemas.FieldError{Field: "source", Code: CodeOutOfScope, Message: fmt.Sprintf(
			"producer %s may only report for sources %s; %q is not one of them (operators: ingest.producers[].sources)", g.name, strings.Join(g.sources, ", "), e.Source)})
	}
	if len(g.teams) > 0 {
		team, ok := e.Labels[teamLabel]
		switch {
		case !ok || team == "":
			probs = append(probs, schemas.FieldError{Field: "labels." + teamLabel, Code: CodeOutOfScope, Message: fmt.Sprintf(
				"producer %s may only report for teams %s and must name one in labels.%s", g.name, strings.Join(g.teams, ", "), teamLabel)})
		case !matchAny(g.teams, team):
			probs = append(probs, schemas.FieldError{Field: "labels." + teamLabel, Code: CodeOutOfScope, Message: fmt.Sprintf(
				"producer %s may only report for teams %s; %q is not one of them (operators: ingest.producers[].teams)", g.name, strings.Join(g.teams, ", "), team)})
		}
	}
	return probs
}

// teamLabel is the label that attributes an event to a team (the enrich
// stage honours it as well).
const teamLabel = "team"

// CodeOutOfScope is the errors[].code of an event that a scoped token may
// not report.
const CodeOutOfScope = "out_of_scope"

// matchAny reports whether v matches one of the patterns (path.Match
// syntax: "*" matches any run of characters but "/").
func matchAny(patterns []string, v string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}
