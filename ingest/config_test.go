package ingest

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

func TestConfigValidate(t *testing.T) {
	good := HashToken("t1")
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // one substring per expected problem; none = valid
	}{
		{name: "one producer", change: func(c *Config) { c.Producers = []ProducerToken{{Name: "gw", TokenSHA256: good}} }},
		{name: "upper-case hash", change: func(c *Config) { c.Producers = []ProducerToken{{TokenSHA256: strings.ToUpper(good)}} }},
		{name: "anonymous dev mode", change: func(c *Config) { c.AllowAnonymous = true }},
		{name: "largest event", change: func(c *Config) {
			c.Producers = []ProducerToken{{TokenSHA256: good}}
			c.MaxEventBytes = MaxEventBytesLimit
		}},
		{name: "event too large to enrich", change: func(c *Config) {
			c.Producers = []ProducerToken{{TokenSHA256: good}}
			c.MaxEventBytes = 1 << 20
		}, want: []string{"ingest.max_event_bytes: must be between 1 and 921600, got 1048576: enrich adds pricing and ownership"}},
		{name: "defaults need producers", change: func(*Config) {}, want: []string{"ingest.producers: none configured"}},
		{name: "anonymous with producers", change: func(c *Config) {
			c.AllowAnonymous = true
			c.Producers = []ProducerToken{{TokenSHA256: good}}
		}, want: []string{"ingest.allow_anonymous: must be false"}},
		{name: "every problem at once", change: func(c *Config) {
			c.ListenAddr = "8080"
			c.MaxBodyBytes = 0
			c.MaxEventsPerRequest = -1
			c.MaxEventBytes = 0
			c.MaxInflightRequests = 0
			c.ProduceTimeout = 0
			c.RetryAfter = 100 * time.Millisecond
			c.ReadTimeout = 0
			c.ShutdownTimeout = 0
			c.Producers = []ProducerToken{
				{Name: "gw", TokenSHA256: good},
				{Name: "gw", TokenSHA256: "my-raw-secret-token"},
				{Name: "other", TokenSHA256: good},
			}
		}, want: []string{
			"ingest.listen_addr: must be host:port",
			"ingest.max_body_bytes: must be positive",
			"ingest.max_events_per_request: must be positive",
			"ingest.max_event_bytes: must be between 1 and 921600, got 0",
			"ingest.max_inflight_requests: must be positive",
			"ingest.produce_timeout: must be at least",
			"ingest.retry_after: must be at least 1s",
			"ingest.read_timeout: must be at least",
			"ingest.shutdown_timeout: must be at least",
			`ingest.producers[1].name: "gw" is also the name of producers[0]`,
			"ingest.producers[1].token_sha256: must be 64 hex characters",
			"ingest.producers[2].token_sha256: is also a token of producers[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want %d problems", len(tt.want))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
			if strings.Contains(err.Error(), "my-raw-secret-token") {
				t.Error("Validate echoed a value that may be a raw token")
			}
		})
	}
}

// The example config in testdata sets every key, decodes onto the defaults
// and validates.
func TestExampleConfig(t *testing.T) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(struct {
		Ingest Config `koanf:"ingest"`
	}{DefaultConfig()}, "koanf"), nil); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, key := range k.Keys() {
		known[key] = true
	}
	if err := k.Load(file.Provider("testdata/config.yaml"), yaml.Parser()); err != nil {
		t.Fatalf("loading testdata/config.yaml: %v", err)
	}
	var cfg Config
	if err := k.Unmarshal("ingest", &cfg); err != nil {
		t.Fatalf("decoding testdata/config.yaml: %v", err)
	}
	for _, key := range k.Keys() {
		if !known[key] {
			t.Errorf("testdata/config.yaml: unknown key %q", key)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("testdata/config.yaml: %v", err)
	}
	// Every field differs from its default, so the example documents all.
	def := reflect.ValueOf(DefaultConfig())
	got := reflect.ValueOf(cfg)
	for i := range def.NumField() {
		f := def.Type().Field(i)
		if f.Name != "AllowAnonymous" && reflect.DeepEqual(def.Field(i).Interface(), got.Field(i).Interface()) {
			t.Errorf("testdata/config.yaml leaves %s at its default", f.Tag.Get("koanf"))
		}
	}
	if cfg.ProduceTimeout != 5*time.Second || len(cfg.Producers) != 2 || cfg.Producers[0].Name != "gw-eu" {
		t.Errorf("decoded %+v", cfg)
	}
}

func TestHashToken(t *testing.T) {
	// printf %s abc | sha256sum
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
	if got := APIKeyID("abc"); got != "sha256:ba7816bf8f01cfea414140de5dae2223" {
		t.Fatalf("APIKeyID(abc) = %s", got)
	}
	tok := NewToken()
	if !strings.HasPrefix(tok, "aivis_") || len(tok) < 30 || tok == NewToken() {
		t.Fatalf("NewToken = %q", tok)
	}
}

func TestPrintTokenHash(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "abc\n", want: HashToken("abc") + "\n"},
		{in: "abc\r\n", want: HashToken("abc") + "\n"},
		{in: "abc", want: HashToken("abc") + "\n"},
		{in: "\n", wantErr: "empty"},
		{in: "", wantErr: "empty"},
		{in: "a b\n", wantErr: "whitespace"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := PrintTokenHash(&out, strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PrintTokenHash(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || out.String() != tt.want {
			t.Errorf("PrintTokenHash(%q) = %q, %v; want %q", tt.in, out.String(), err, tt.want)
		}
	}
}

func TestAuthenticator(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Producers = []ProducerToken{{Name: "a", TokenSHA256: HashToken("tok-a")}, {TokenSHA256: strings.ToUpper(HashToken("tok-b"))}}
	a := newAuthenticator(cfg)
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer tok-a", "a", true},
		{"bearer  tok-b ", "producers[1]", true},
		{"Bearer tok-c", "", false},
		{"Basic tok-a", "", false},
		{"Bearer ", "", false},
		{"tok-a", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		name, ok := a.check(tt.header)
		if name != tt.want || ok != tt.ok {
			t.Errorf("check(%q) = %q, %v; want %q, %v", tt.header, name, ok, tt.want, tt.ok)
		}
	}
}
