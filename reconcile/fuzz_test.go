package reconcile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzImporter seeds f with the format's fixtures and checks that any
// input either imports or fails with an ImportError naming the file,
// never panics, and never yields a line without a day or provider.
func fuzzImporter(f *testing.F, format string, parse func(string, []byte, *Models) (*Bill, error)) {
	files, err := filepath.Glob(filepath.Join("testdata", format, "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	models := testModels(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		bill, err := parse("fuzz.bill", data, models)
		if err != nil {
			var ie *ImportError
			if !errors.As(err, &ie) || ie.File != "fuzz.bill" || !strings.HasPrefix(err.Error(), "fuzz.bill") {
				t.Fatalf("error %q (%T) does not name the file as an ImportError", err, err)
			}
			return
		}
		for _, l := range bill.Lines {
			if l.Day.IsZero() || l.Provider == "" || l.Where == "" {
				t.Fatalf("incomplete line %+v", l)
			}
			if l.HasTokens && (l.Tokens < 0 || l.Tokens > maxTokens) {
				t.Fatalf("tokens out of range: %+v", l)
			}
		}
	})
}

func FuzzOpenAI(f *testing.F)     { fuzzImporter(f, FormatOpenAI, ParseOpenAI) }
func FuzzAnthropic(f *testing.F)  { fuzzImporter(f, FormatAnthropic, ParseAnthropic) }
func FuzzAWSCUR(f *testing.F)     { fuzzImporter(f, FormatAWSCUR, ParseAWSCUR) }
func FuzzGCPBilling(f *testing.F) { fuzzImporter(f, FormatGCPBilling, ParseGCPBilling) }
