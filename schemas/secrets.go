package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Nothing that looks like a credential is stored raw. Ingest applies
// HideSecrets to every event before it is validated and produced, and the
// adapters, package otlp and ingest/client build events that already
// comply.

// APIKeyID is the form in which an API key travels and is stored:
// "sha256:" and the hex of the first 16 bytes of its SHA-256.
func APIKeyID(rawKey string) string {
	sum := sha256.Sum256([]byte(rawKey))
	// One allocation, the result: ingest hashes a key for most events.
	var id [len("sha256:") + 32]byte
	copy(id[:], "sha256:")
	hex.Encode(id[len("sha256:"):], sum[:16])
	return string(id[:])
}

// IsAPIKeyID reports whether s has the form APIKeyID returns: "sha256:"
// and 32 lower-case hex digits.
func IsAPIKeyID(s string) bool {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 32 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if !lowerHex[hexPart[i]] {
			return false
		}
	}
	return true
}

// lowerHex marks the lower-case hex digits.
var lowerHex = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
	}
	return t
}()

// HashKey returns s when it is already an APIKeyID and APIKeyID(s)
// otherwise, taking s for a raw key: the one place where a value that may
// be a credential becomes storable. "" stays "".
func HashKey(s string) string {
	if s == "" || IsAPIKeyID(s) {
		return s
	}
	return APIKeyID(s)
}

// credentialWords are the words of a name that make it a credential's,
// written without separators; credentialPairs are two adjacent words that
// do.
var (
	credentialWords = map[string]bool{
		"apikey": true, "xapikey": true, "accesskey": true, "secretkey": true, "privatekey": true,
		"token": true, "accesstoken": true, "authtoken": true, "refreshtoken": true, "idtoken": true,
		"secret": true, "clientsecret": true, "password": true, "passwd": true, "pwd": true, "passphrase": true,
		"bearer": true, "authorization": true, "auth": true, "credential": true, "credentials": true,
		"cookie": true, "jwt": true,
	}
	credentialPairs = map[string]bool{
		"apikey": true, "accesskey": true, "secretkey": true, "privatekey": true, "sessionkey": true, "signingkey": true,
	}
)

// CredentialName reports whether a label name looks
// like it holds a credential. The name is split into words at every
// character that is not a letter or digit and where a lower-case letter is
// followed by an upper-case one, and compared without case; it is a
// credential's when one word is one of api_key, apikey, x-api-key,
// access_key, secret_key, private_key, token, access_token, auth_token,
// refresh_token, id_token, secret, client_secret, password, passwd, pwd,
// passphrase, bearer, authorization, auth, credential(s), cookie or jwt
// (each also written without its separator), or two adjacent words are
// api+key, access+key, secret+key, private+key, session+key or
// signing+key. So "X-Api-Key", "openai_api_key", "githubToken",
// "db.password" and "Proxy-Authorization" are; "max_tokens", "keyword"
// and "author" are not.
func CredentialName(name string) bool {
	// The words, lower-cased, one after another without separators, so
	// that a word and the one before it are one slice of letters.
	var buf [128]byte
	letters := buf[:0]
	prev, cur := -1, 0 // where the previous and the current word start
	found, prevLower := false, false
	endWord := func() {
		if len(letters) == cur {
			return
		}
		if credentialWords[string(letters[cur:])] || prev >= 0 && credentialPairs[string(letters[prev:])] {
			found = true
		}
		prev, cur = cur, len(letters)
	}
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf && unicode.IsUpper(r):
			if prevLower {
				endWord()
			}
			letters = utf8.AppendRune(letters, unicode.ToLower(r))
			prevLower = false
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			letters = utf8.AppendRune(letters, r)
			prevLower = true
		default:
			endWord()
			prevLower = false
		}
	}
	endWord()
	return found
}

// HideSecrets makes e storable: a non-empty api_key_id that is not of the
// APIKeyID form is taken for a raw key and replaced by its APIKeyID; the
// value of every label whose name is a credential's (CredentialName) is
// replaced by its APIKeyID likewise; raw_usage is reduced to its counts
// (ReduceRawUsage). Ingest moves a label named api_key to api_key_id
// before this.
func (e *Event) HideSecrets() {
	e.hideCredentials(CredentialName)
	if !reduced(e.RawUsage) {
		e.RawUsage = ReduceRawUsage(e.RawUsage)
	}
}

// hideCredentials is HideSecrets without raw_usage, with credential
// telling CredentialName.
func (e *Event) hideCredentials(credential func(string) bool) {
	e.APIKeyID = HashKey(e.APIKeyID)
	for k, v := range e.Labels {
		if credential(k) {
			e.Labels[k] = HashKey(v)
		}
	}
}

// reduceBufs holds the scratch of reduced.
var reduceBufs = sync.Pool{New: func() any { return new([]byte) }}

// reduced reports whether ReduceRawUsage would return raw unchanged, so
// that an event with nothing to hide keeps its raw_usage without a copy.
func reduced(raw json.RawMessage) bool {
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	if countsOnly(raw) {
		return true
	}
	if !validJSON(raw) {
		return false
	}
	bp := reduceBufs.Get().(*[]byte)
	defer reduceBufs.Put(bp)
	r := reducer{data: raw}
	out, ok := r.value((*bp)[:0])
	*bp = out
	return ok && bytes.Equal(out, raw)
}

// maxRawUsageKey bounds the length of a raw_usage member name.
const maxRawUsageKey = 64

// ReduceRawUsage keeps of a provider's usage object only its counts: the
// members whose value is a number, and objects and arrays of them,
// recursively, and the names of what they count: Gemini's "modality"
// ("TEXT", "AUDIO") and Bedrock's cache "ttl" ("5m", "1h"), see unitName.
// Other strings, booleans and nulls are dropped, and so are members
// whose name is longer than 64 bytes or holds a character other than a
// letter, digit, '_' or '.', and objects and arrays left empty. A raw_usage that is not a JSON object, or
// holds no count, becomes nil. What remains cannot carry text such as an
// API key, an account id or a prompt.
func ReduceRawUsage(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil
	}
	r := reducer{data: raw}
	out, ok := r.value(make([]byte, 0, len(raw)))
	if !ok {
		return nil
	}
	return out
}

// reducer copies the counts of a valid JSON value.
type reducer struct {
	data []byte
	i    int
}

func (r *reducer) space() {
	for r.i < len(r.data) && (r.data[r.i] == ' ' || r.data[r.i] == '\t' || r.data[r.i] == '\r' || r.data[r.i] == '\n') {
		r.i++
	}
}

// value appends what ReduceRawUsage keeps of the value at r.i to out, and
// says whether that is anything; either way it moves past the value.
func (r *reducer) value(out []byte) ([]byte, bool) {
	r.space()
	switch c := r.data[r.i]; {
	case c == '{' || c == '[':
		return r.container(out)
	case c == '"':
		r.str()
		return out, false
	default:
		start := r.i
		for r.i < len(r.data) {
			if c := r.data[r.i]; c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				break
			}
			r.i++
		}
		if c == 't' || c == 'f' || c == 'n' {
			return out, false
		}
		return append(out, r.data[start:r.i]...), true
	}
}

// str moves past the string at r.i and returns it with its quotes.
func (r *reducer) str() []byte {
	start := r.i
	for r.i++; r.i < len(r.data); r.i++ {
		switch r.data[r.i] {
		case '\\':
			r.i++
		case '"':
			r.i++
			return r.data[start:r.i]
		}
	}
	return r.data[start:]
}

func (r *reducer) container(out []byte) ([]byte, bool) {
	obj := r.data[r.i] == '{'
	r.i++
	start := len(out)
	out = append(out, r.data[r.i-1])
	n := 0
	for {
		r.space()
		if c := r.data[r.i]; c == '}' || c == ']' {
			r.i++
			break
		}
		mark := len(out)
		if n > 0 {
			out = append(out, ',')
		}
		keep := true
		if obj {
			key := r.str()
			r.space()
			r.i++ // ':'
			r.space()
			name := string(key[1 : len(key)-1])
			keep = countName(name)
			if keep && r.data[r.i] == '"' {
				if v := r.str(); unitName(name, v) {
					out = append(append(append(out, key...), ':'), v...)
					n++
				} else {
					out = out[:mark]
				}
				keep = false
				goto next
			}
			if keep {
				out = append(append(out, key...), ':')
			}
		}
		if keep {
			var ok bool
			if out, ok = r.value(out); ok {
				n++
			} else {
				out = out[:mark]
			}
		} else {
			out = out[:mark]
			r.value(out)
		}
	next:
		r.space()
		if r.data[r.i] == ',' {
			r.i++
		}
	}
	if n == 0 {
		return out[:start], false
	}
	if obj {
		return append(out, '}'), true
	}
	return append(out, ']'), true
}

// unitName reports whether member key with value raw says what the
// counts beside it are of: Gemini's "modality" ("TEXT", "AUDIO": 1 to 32
// letters A–Z and '_') or Bedrock's cache "ttl" ("5m", "1h": digits and
// one of s, m, h, at most 8 characters).
func unitName(key string, raw json.RawMessage) bool {
	if len(raw) < 3 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	text := raw[1 : len(raw)-1]
	switch key {
	case "modality":
		if len(text) > 32 {
			return false
		}
		for _, c := range text {
			if !(c >= 'A' && c <= 'Z' || c == '_') {
				return false
			}
		}
		return true
	case "ttl":
		if len(text) < 2 || len(text) > 8 || bytes.IndexByte([]byte("smh"), text[len(text)-1]) < 0 {
			return false
		}
		for _, c := range text[:len(text)-1] {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return false
}

func countName(k string) bool {
	if k == "" || len(k) > maxRawUsageKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !countNameByte[k[i]] {
			return false
		}
	}
	return true
}

// countNameByte holds the bytes a name countName keeps may have: ASCII
// letters, digits, '_' and '.'.
var countNameByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
	}
	return t
}()

// countsOnly reports, in one pass and without allocating, whether raw is a
// usage object that is already reduced and clean: valid JSON without
// space, in which every member is a count (a number or a non-empty object
// or array of counts) under a name countName keeps, or a unitName string,
// and no object names a member twice. ReduceRawUsage then returns raw as
// it is and CheckJSON finds nothing in it. Most raw usage is like this;
// false only means that the caller must look closer.
func countsOnly(raw []byte) bool {
	if len(raw) == 0 || (raw[0] != '{' && raw[0] != '[') {
		return false
	}
	end, ok := countsValue(raw, 0, 0)
	return ok && end == len(raw)
}

// countsLimits bound what countsOnly looks at; beyond them it says false.
const (
	countsMaxDepth   = 16
	countsMaxMembers = 32
)

// countsValue checks the count (number or container) at raw[i] and
// returns the offset past it.
func countsValue(raw []byte, i, depth int) (int, bool) {
	if i >= len(raw) {
		return i, false
	}
	switch c := raw[i]; {
	case c == '{' || c == '[':
		if depth == countsMaxDepth {
			return i, false
		}
		return countsContainer(raw, i, depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return countsNumber(raw, i)
	}
	return i, false
}

func countsContainer(raw []byte, i, depth int) (int, bool) {
	obj := raw[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	var keys [countsMaxMembers]string // the object's names so far
	i++
	for n := 0; ; n++ {
		if n == countsMaxMembers {
			return i, false
		}
		if obj {
			// A name countName keeps needs no escapes: its bytes are
			// checked as they are scanned.
			if i >= len(raw) || raw[i] != '"' {
				return i, false
			}
			j := i + 1
			for j < len(raw) && countNameByte[raw[j]] {
				j++
			}
			if j+1 >= len(raw) || raw[j] != '"' || raw[j+1] != ':' || j == i+1 || j-i-1 > maxRawUsageKey {
				return i, false
			}
			name := unsafeString(raw[i+1 : j])
			for _, k := range keys[:n] {
				if k == name {
					return i, false
				}
			}
			keys[n] = name
			i = j + 2
			if i < len(raw) && raw[i] == '"' {
				// A unit name: what unitName accepts has no escapes.
				j := i + 1
				for j < len(raw) && raw[j] != '"' && raw[j] != '\\' {
					j++
				}
				if j >= len(raw) || raw[j] != '"' || !unitName(name, raw[i:j+1]) {
					return i, false
				}
				i = j + 1
			} else {
				var ok bool
				if i, ok = countsValue(raw, i, depth); !ok {
					return i, false
				}
			}
		} else {
			var ok bool
			if i, ok = countsValue(raw, i, depth); !ok {
				return i, false
			}
		}
		if i >= len(raw) {
			return i, false
		}
		switch raw[i] {
		case ',':
			i++
		case closer:
			return i + 1, true
		default:
			return i, false
		}
	}
}

// countsNumber checks the JSON number at raw[i].
func countsNumber(raw []byte, i int) (int, bool) {
	if raw[i] == '-' {
		i++
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	default:
		j := skipDigits(raw, i)
		if j == i {
			return i, false
		}
		i = j
	}
	if i < len(raw) && raw[i] == '.' {
		j := skipDigits(raw, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		j := skipDigits(raw, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

// skipDigits returns the offset of the first byte from raw[i] on that is
// not an ASCII digit.
func skipDigits(raw []byte, i int) int {
	for i < len(raw) && raw[i]-'0' <= 9 {
		i++
	}
	return i
}

// unsafeString views b as a string for comparisons that do not outlive b.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
