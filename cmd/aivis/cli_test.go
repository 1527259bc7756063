package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// runCLI runs aivis in-process with args and returns the exit code and
// what it wrote.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestCLICommandsReachable: aivis help lists every command, and each one
// it lists answers --help with its own usage, not the list of commands.
func TestCLICommandsReachable(t *testing.T) {
	code, stdout, stderr := runCLI("help")
	if code != 0 {
		t.Fatalf("aivis help: exit %d", code)
	}
	if stderr != "" {
		t.Errorf("aivis help wrote to stderr:\n%s", stderr)
	}
	help := stdout
	_, list, ok := strings.Cut(help, "Commands:\n")
	if !ok {
		t.Fatalf("aivis help lists no commands:\n%s", help)
	}
	list, _, _ = strings.Cut(list, "\n\n")
	var listed []string
	for _, line := range strings.Split(list, "\n") {
		name := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), 2)[0]
		listed = append(listed, name)
	}
	sort.Strings(listed)
	if got, want := strings.Join(listed, ", "), strings.Join(commandNames(), ", "); got != want {
		t.Errorf("aivis help lists %s\nwant %s", got, want)
	}
	for _, name := range listed {
		code, stdout, stderr := runCLI(append(strings.Fields(name), "--help")...)
		if code != 0 {
			t.Errorf("aivis %s --help: exit %d, want 0:\n%s", name, code, stderr)
		}
		wantUsage(t, name, stdout)
	}
}

// TestCLICatalogImportLiteLLM runs aivis catalog import-litellm on the
// importer's test price map, to a file and to stdout, and loads the
// catalog it wrote.
func TestCLICatalogImportLiteLLM(t *testing.T) {
	testdata := filepath.Join("..", "..", "pricing", "testdata", "litellm")
	in := filepath.Join(testdata, "model_prices.json")
	want, err := os.ReadFile(filepath.Join(testdata, "expected.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "catalog.yaml")
	code, _, stderr := runCLI("catalog", "import-litellm", "--in", in, "--out", out, "--litellm-version", "v1.0-test")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\n%s", out, filepath.Join(testdata, "expected.yaml"), got)
	}

	code, stdout, stderr := runCLI("catalog", "import-litellm", "--in", in, "--out", "-", "--litellm-version", "v1.0-test")
	if code != 0 || stdout != string(want) {
		t.Errorf("--out -: exit %d, stdout differs from the expected catalog:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI("config", "validate", "--enrich.catalog_path", out, "--ingest.allow_anonymous")
	if code != 0 || !strings.Contains(stdout, "configuration is valid") {
		t.Errorf("config validate with the imported catalog: exit %d\n%s%s", code, stdout, stderr)
	}

	code, _, stderr = runCLI("catalog", "import-litellm", "--out", out)
	if code != 1 || !strings.Contains(stderr, "--in and --out are required") {
		t.Errorf("without --in: exit %d, want 1 saying what is required:\n%s", code, stderr)
	}
}

// commandFlags returns the flag set that run builds for the command.
func commandFlags(name string) *pflag.FlagSet {
	var discard bytes.Buffer
	return newFlagSet(name, commands[name], &discard)
}

// wantUsage checks that out is the usage of the named command: its own
// flags and the configuration flags.
func wantUsage(t *testing.T, name, out string) {
	t.Helper()
	if !strings.HasPrefix(out, "Usage: aivis "+name+" [flags]\n") {
		t.Errorf("aivis %s: want its usage, got:\n%s", name, out)
		return
	}
	if !strings.Contains(out, "--kafka.brokers strings") || !strings.Contains(out, "--aggregate.instance_id string") {
		t.Errorf("aivis %s: usage lacks the configuration flags:\n%s", name, out)
	}
	if !strings.Contains(out, "ingest.producers (environment: AIVIS_INGEST__PRODUCERS)") {
		t.Errorf("aivis %s: usage does not say how to set ingest.producers:\n%s", name, out)
	}
	commandFlags(name).VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(out, "--"+f.Name+" ") && !strings.Contains(out, "--"+f.Name+"[") {
			t.Errorf("aivis %s: usage does not list --%s", name, f.Name)
		}
	})
}

// TestCLIFlagErrors: for every command, an unknown flag, a flag without
// its value and a bad value for each typed flag print the usage and the
// error on stderr and exit 2, before any configuration is loaded.
func TestCLIFlagErrors(t *testing.T) {
	for _, name := range commandNames() {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			cmdArgs := strings.Fields(name)
			check := func(wantErr string, args ...string) {
				t.Helper()
				code, stdout, stderr := runCLI(append(cmdArgs, args...)...)
				if code != 2 {
					t.Errorf("aivis %s %s: exit %d, want 2", name, strings.Join(args, " "), code)
				}
				if stdout != "" {
					t.Errorf("aivis %s %s: wrote to stdout:\n%s", name, strings.Join(args, " "), stdout)
				}
				if !strings.Contains(stderr, "aivis "+name+": "+wantErr) {
					t.Errorf("aivis %s %s: stderr does not say %q:\n%s", name, strings.Join(args, " "), wantErr, stderr)
				}
				wantUsage(t, name, stderr)
			}
			check("unknown flag: --no-such-flag", "--no-such-flag")
			check("unknown shorthand flag: 'z' in -z", "-z")
			check("flag needs an argument: --kafka.partitions", "--kafka.partitions")
			check(`invalid argument "abc" for "--kafka.partitions" flag`, "--kafka.partitions=abc")

			// A bad value for every flag that is not a string, the
			// command's own included.
			typed := 0
			commandFlags(name).VisitAll(func(f *pflag.Flag) {
				switch f.Value.Type() {
				case "string", "stringSlice", "stringArray":
					return
				}
				typed++
				code, _, stderr := runCLI(append(cmdArgs, "--"+f.Name+"=abc")...)
				want := `invalid argument "abc" for "--` + f.Name + `"`
				if code != 2 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "Usage: aivis "+name) {
					t.Errorf("aivis %s --%s=abc: exit %d, want 2 with %q and the usage; stderr:\n%s", name, f.Name, code, want, stderr)
				}
			})
			if typed < 30 {
				t.Errorf("aivis %s has %d typed flags; the configuration flags are missing", name, typed)
			}
		})
	}
}

// TestCLIHelp: --help and -h print the command's usage on stdout and exit 0.
func TestCLIHelp(t *testing.T) {
	for _, name := range commandNames() {
		for _, help := range []string{"--help", "-h"} {
			code, stdout, stderr := runCLI(append(strings.Fields(name), help)...)
			if code != 0 {
				t.Errorf("aivis %s %s: exit %d, want 0; stderr:\n%s", name, help, code, stderr)
			}
			if stderr != "" {
				t.Errorf("aivis %s %s: wrote to stderr:\n%s", name, help, stderr)
			}
			wantUsage(t, name, stdout)
		}
	}
}

// TestCLIUsageTexts: every flag has a usage text without backquotes (pflag
// shows a back-quoted word as the flag's argument name).
func TestCLIUsageTexts(t *testing.T) {
	for _, name := range commandNames() {
		commandFlags(name).VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("aivis %s --%s has no usage text", name, f.Name)
			}
			if strings.Contains(f.Usage, "`") {
				t.Errorf("aivis %s --%s: usage %q has a backquote", name, f.Name, f.Usage)
			}
		})
	}
}

// TestCLIExportFocusChecksItsFlags refuses an export without a range or
// with an unknown format before it connects anywhere.
func TestCLIExportFocusChecksItsFlags(t *testing.T) {
	for args, want := range map[string]string{
		"export focus": "from and to: both are required",
		"export focus --from 2026-11-02 --to 2026-11-01":            "must be before to",
		"export focus --from 2026-11-01 --to 2026-11-02 -f x":       "unknown shorthand flag",
		"export focus --from 2026-11-01 --to 2026-11-02 --format x": `format "x": want csv or parquet`,
		"export focus --from yesterday --to 2026-11-02":             "--from:",
	} {
		code, _, stderr := runCLI(strings.Fields(args)...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("aivis %s: exit %d, stderr %q; want an error containing %q", args, code, stderr, want)
		}
	}
}
