package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
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
	help := stdout + stderr
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
		out := stdout + stderr
		if code != 0 || strings.Contains(out, "Commands:") || !strings.Contains(out, "aivis "+name) {
			t.Errorf("aivis %s --help: exit %d, want 0 and the usage of aivis %s:\n%s", name, code, name, out)
		}
	}
}

// TestCLICatalogImportLiteLLM runs aivis catalog import-litellm on the
// importer's test price map, to a file and to stdout, and loads the
// catalog it wrote.
func TestCLICatalogImportLiteLLM(t *testing.T) {
	testdata := filepath.Join("..", "..", "enrich", "testdata", "litellm")
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
