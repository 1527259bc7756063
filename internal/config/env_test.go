package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// toolVariables finds the environment variables that the repository's
// scripts, Makefile, CI entry point and Go code read, other than
// configuration keys: ${NAME} in shell and Getenv("NAME") in Go.
func toolVariables(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	shellRef := regexp.MustCompile(`\$\{?(AIVIS[A-Z0-9_]*)`)
	goRef := regexp.MustCompile(`(?:Getenv|LookupEnv)\("(AIVIS[A-Z0-9_]*)"\)|"(AIVIS[A-Z0-9_]*)="`)
	config := map[string]bool{}
	for _, k := range keys() {
		config[k.env()] = true
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") && name != ".ci") {
				return filepath.SkipDir
			}
			return nil
		}
		var re *regexp.Regexp
		switch {
		case strings.HasSuffix(path, ".sh"), d.Name() == "Makefile", path == filepath.Join(root, ".ci", "run"):
			re = shellRef
		case strings.HasSuffix(path, ".go"):
			re = goRef
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			for _, name := range m[1:] {
				// Configuration keys are set on purpose (fault tests do).
				if name != "" && !config[name] {
					seen[name] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestConfigToolVariablesDoNotCollide exports every variable that the
// scripts and the tests read, as a developer running the Kafka script with
// a custom port would, next to a configuration variable: the configuration
// loads, and only AIVIS_ variables are taken as keys.
func TestConfigToolVariablesDoNotCollide(t *testing.T) {
	names := toolVariables(t)
	for _, want := range []string{"AIVISDEV_KAFKA_PORT", "AIVISDEV_KAFKA_DIR", "AIVISDEV_CH_PORT", "AIVISDEV_CLICKHOUSE_ADDR", "AIVISDEV_KAFKA_BROKERS", "AIVISDEV_DEMO_RATE"} {
		if !containsString(names, want) {
			t.Errorf("no script or test reads %s; found %v", want, names)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, EnvPrefix) {
			t.Errorf("%s is read by a script or test but starts with %s, which is for configuration keys; use AIVISDEV_", n, EnvPrefix)
		}
		t.Setenv(n, "19092")
	}
	t.Setenv("AIVIS_KAFKA__BROKERS", "127.0.0.1:19092")
	c, err := load(t, nil)
	if err != nil {
		t.Fatalf("with %v exported: %v", names, err)
	}
	if len(c.Kafka.Brokers) != 1 || c.Kafka.Brokers[0] != "127.0.0.1:19092" {
		t.Errorf("kafka.brokers = %q, want the AIVIS_KAFKA__BROKERS value", c.Kafka.Brokers)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestConfigStrayVariableNamesItself: an AIVIS_ variable that is no key
// stops loading with an error that names the variable and says how keys
// are spelled; a near miss gets the right name.
func TestConfigStrayVariableNamesItself(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"AIVIS_FOO", []string{"environment variable AIVIS_FOO matches no configuration key", "AIVIS_KAFKA__BROKERS", "AIVISDEV_FOO"}},
		{"AIVIS_KAFKA_PORT", []string{"environment variable AIVIS_KAFKA_PORT matches no configuration key", "AIVISDEV_KAFKA_PORT"}},
		{"AIVIS_AGGREGATE_INSTANCE_ID", []string{"environment variable AIVIS_AGGREGATE_INSTANCE_ID", "did you mean AIVIS_AGGREGATE__INSTANCE_ID (aggregate.instance_id;"}},
		{"AIVIS_AGGREGATE__ANOMALY", []string{"environment variable AIVIS_AGGREGATE__ANOMALY matches no configuration key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, "x")
			t.Setenv("AIVIS_KAFKA__BROKERS", "127.0.0.1:19092")
			_, err := load(t, nil)
			if err == nil {
				t.Fatalf("%s=x loaded without an error", tc.name)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}

	// Every stray variable is reported, not only the first.
	t.Setenv("AIVIS_FOO", "1")
	t.Setenv("AIVIS_BAR", "2")
	_, err := load(t, nil)
	if err == nil || !strings.Contains(err.Error(), "AIVIS_FOO") || !strings.Contains(err.Error(), "AIVIS_BAR") {
		t.Errorf("err = %v, want both variables named", err)
	}
}
