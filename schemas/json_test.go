package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseRefusesWhatEncodingJSONWouldHide covers the three ways in which
// encoding/json decodes an event without an error into something other
// than what was sent.
func TestParseRefusesWhatEncodingJSONWouldHide(t *testing.T) {
	const head = `{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"openai",`
	for _, c := range []struct {
		name, body, field, code string
	}{
		{"duplicate key", head + `"model":"cheap","model":"gpt-4o"}`, "model", CodeDuplicateKey},
		{"duplicate nested key", head + `"model":"m","usage":{"input_tokens":1,"input_tokens":1000}}`, "usage.input_tokens", CodeDuplicateKey},
		{"duplicate label", head + `"model":"m","labels":{"team":"a","team":"b"}}`, "labels.team", CodeDuplicateKey},
		{"duplicate key by escape", head + `"model":"m","\u006dodel":"n"}`, "model", CodeDuplicateKey},
		{"duplicate in raw_usage", head + `"model":"m","raw_usage":{"a":1,"a":2}}`, "raw_usage.a", CodeDuplicateKey},
		{"case variant overrides", head + `"model":"m","MODEL":"other"}`, "MODEL", CodeDuplicateKey},
		{"two case variants", head + `"Model":"m","MODEL":"other"}`, "MODEL", CodeDuplicateKey},
		{"case variant nested", head + `"model":"m","usage":{"input_tokens":5,"Input_Tokens":5}}`, "usage.Input_Tokens", CodeDuplicateKey},
		{"invalid UTF-8 value", head + "\"model\":\"m\xff\"}", "model", CodeInvalidUTF8},
		{"invalid UTF-8 label", head + "\"model\":\"m\",\"labels\":{\"team\":\"a\xc3\"}}", "labels.team", CodeInvalidUTF8},
		{"invalid UTF-8 key", head + "\"model\":\"m\",\"labels\":{\"t\xffm\":\"a\"}}", "labels.t\uFFFDm", CodeInvalidUTF8},
		{"lone surrogate", head + `"model":"m\ud800"}`, "model", CodeInvalidUTF8},
		{"lone low surrogate", head + `"model":"m\udc00x"}`, "model", CodeInvalidUTF8},
		{"warnings element", head + "\"model\":\"m\",\"warnings\":[\"ok\",\"b\xffd\"]}", "warnings[1]", CodeInvalidUTF8},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse: err = %v, want a ValidationError", err)
			}
			for _, p := range verr.Problems {
				if p.Field == c.field && p.Code == c.code {
					return
				}
			}
			t.Errorf("problems %+v do not name %s with code %s", verr.Problems, c.field, c.code)
		})
	}
}

// TestParseKeepsWhatIsFine: labels that differ in case are two labels, a
// surrogate pair is one character, a single key in another case names its
// field, and CheckJSON changes nothing.
func TestParseKeepsWhatIsFine(t *testing.T) {
	body := `{"schema_version":"1","event_id":"e1","time":"2026-11-26T10:00:00Z","kind":"llm.request","source":"s","provider":"openai","Model":"m\ud83d\ude00é","labels":{"Team":"a","team":"b"},"raw_usage":{"x":{"Y":1,"y":2}}}`
	e, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if e.Model != "m😀é" || e.Labels["Team"] != "a" || e.Labels["team"] != "b" {
		t.Errorf("event = %+v", e)
	}
}

func TestCheckJSONFoldedFindsKeysThatDifferInCase(t *testing.T) {
	probs := CheckJSONFolded([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","NAME":"b"}]}]}]}`))
	if len(probs) != 1 || probs[0].Field != "resourceSpans[0].scopeSpans[0].spans[0].NAME" || probs[0].Code != CodeDuplicateKey {
		t.Errorf("problems = %+v", probs)
	}
	if probs := CheckJSONFolded([]byte(`{"a":{"b":1},"c":[{"b":1},{"b":2}]}`)); len(probs) != 0 {
		t.Errorf("distinct objects: problems = %+v", probs)
	}
}

func TestCheckJSONLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
	}
	b.WriteString(`"k":2}`)
	probs := CheckJSON([]byte(b.String()), nil)
	if len(probs) != 1 || probs[0].Field != "k" {
		t.Errorf("problems = %+v", probs)
	}
}

// hasDuplicate finds repeated keys with encoding/json's tokenizer, as a
// reference for CheckJSON.
func hasDuplicate(data []byte) (dup, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return dup, true
		}
		if err != nil {
			return false, false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isStr := tok.(string); isStr && top != nil && top.obj && top.expect {
			if top.keys[k] {
				dup = true
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		if top != nil && top.obj && tok != json.Delim('}') {
			top.expect = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].expect = true
			}
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"a":[1,{"a":2,"a":3}]},"c":"\ud800"}`))
	f.Add([]byte(`{"model":"x","MODEL":"y","usage":{"input_tokens":1}}`))
	f.Add([]byte("[\"\xff\",{\"\\u0061\":1,\"a\":2}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		probs := CheckJSON(data, (*Event)(nil))
		_ = CheckJSONFolded(data)
		if !json.Valid(data) {
			return
		}
		dup, ok := hasDuplicate(data)
		if !ok {
			return
		}
		var sawDup, sawUTF8 bool
		for _, p := range probs {
			sawDup = sawDup || p.Code == CodeDuplicateKey
			sawUTF8 = sawUTF8 || p.Code == CodeInvalidUTF8
		}
		if dup && !sawDup && len(probs) < maxJSONProblems {
			t.Errorf("a repeated key went unreported: %+v", probs)
		}
		if !sawUTF8 && len(probs) < maxJSONProblems {
			// What encoding/json decodes must be exactly what was sent.
			var v any
			if err := json.Unmarshal(data, &v); err == nil && containsReplacement(v) && !bytes.Contains(data, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`)) {
				t.Errorf("invalid text went unreported: %q", data)
			}
		}
		if !utf8.Valid(data) && !sawUTF8 && len(probs) < maxJSONProblems {
			t.Errorf("invalid UTF-8 went unreported: %q", data)
		}
	})
}

func containsReplacement(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, utf8.RuneError)
	case []any:
		for _, e := range x {
			if containsReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, utf8.RuneError) || containsReplacement(e) {
				return true
			}
		}
	}
	return false
}
