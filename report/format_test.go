package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Names a producer could send to take over the terminal of whoever reads
// the report, or the spreadsheet it is loaded into.
const (
	retitle   = "ads\x1b]0;pwned\x07"          // OSC: sets the window title
	clearLine = "search\x1b[2K\r"              // erases the line, returns to column 0
	reorder   = "gpt-4o\u202e\u2066fnoc\u2069" // bidi override and isolate
	c1CSI     = "\u009b31mred"                 // CSI as a C1 control
	nulTab    = "a\x00b\tc\nd\x7f"             // NUL, a column break, a row break, DEL
	notUTF8   = "bad\xff\xfe"
)

// hostileResult has a hostile name in every place the report prints one.
func hostileResult() *Result {
	tot := Totals{Requests: 1, InputTokens: 10, OutputTokens: 5, CostUSD: decimal.RequireFromString("-0.5")}
	return &Result{
		From:   time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC),
		Until:  time.Date(2025, 3, 10, 11, 0, 0, 0, time.UTC),
		Totals: tot,
		Models: []ModelRow{
			{Provider: c1CSI, Model: reorder, Totals: tot},
			{Provider: "openai", Model: "=cmd|' /C calc'!A0", Totals: tot},
			{Provider: "openai", Model: "-1.5", Totals: tot},
		},
		Teams: []OwnerRow{
			{Team: retitle, Totals: tot},
			{Team: "+SUM(A1:A9)", Totals: tot},
			{Team: "@HYPERLINK(\"http://x\")", Totals: tot},
			{Team: "-2+3", Totals: tot},
			{Team: "\t=1+1", Totals: tot},
			{Team: "\r=1+1", Totals: tot},
		},
		Projects: []OwnerRow{{Team: clearLine, Project: nulTab, Totals: tot}},
		Confidence: []ConfidenceRow{
			{Provider: c1CSI, Model: retitle, ExactCostUSD: tot.CostUSD, ExactRequests: 1,
				FallbackCostUSD: decimal.RequireFromString("0.25"), FallbackRequests: 2,
				FallbackCodes: []string{"snapshot_fallback", "unknown_service_tier"}, UnpricedRequests: 3},
			{Provider: "openai", Model: "=1+1", FallbackCodes: []string{}},
		},
		Anomalies: []AnomalyRow{{
			WindowStart: time.Date(2025, 3, 10, 10, 1, 0, 0, time.UTC),
			Team:        notUTF8, Model: reorder, CostUSD: tot.CostUSD, BaselineUSD: decimal.RequireFromString("0.1"), ZScore: -2.5,
		}},
	}
}

// terminalUnsafe returns the first character of out that a terminal would
// act on rather than print, other than the newlines that end rows.
func terminalUnsafe(out string) (rune, bool) {
	for i, r := range out {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(out[i:]); size == 1 {
				return rune(out[i]), true
			}
		}
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029') {
			return r, true
		}
	}
	return 0, false
}

func TestReportTableEscapesHostileNames(t *testing.T) {
	var buf bytes.Buffer
	if err := writeTable(&buf, hostileResult()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if r, bad := terminalUnsafe(out); bad {
		t.Errorf("table prints %U raw:\n%q", r, out)
	}
	for _, want := range []string{
		`ads\x1b]0;pwned\a`,
		`search\x1b[2K\r`,
		`gpt-4o\u202e\u2066fnoc\u2069`,
		`\u009b31mred`,
		`a\x00b\tc\nd\x7f`,
		`bad\xff\xfe`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks the escaped name %s:\n%s", want, out)
		}
	}
	// A tab or newline in a name must not add a column or a row.
	_, projects, _ := strings.Cut(out, "TOP PROJECTS BY COST\n")
	projects, _, _ = strings.Cut(projects, "\n\n")
	if lines := strings.Split(projects, "\n"); len(lines) != 2 || len(strings.Fields(lines[1])) != 7 {
		t.Errorf("projects section is not a header and one row of 7 columns:\n%s", projects)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"gpt-4o":            "gpt-4o",
		"équipe données 数据": "équipe données 数据",
		"tab\there":         `tab\there`,
		"\x1b[31m":          `\x1b[31m`,
		"\x00\x07\x7f":      `\x00\a\x7f`,
		"\u0085\u009b":      `\u0085\u009b`,
		"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069": `\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069`,
		"line\u2028para\u2029": `line\u2028para\u2029`,
		"\xff":                 `\xff`,
		"ok\xc3":               `ok\xc3`,
		"\ufffd":               "\ufffd",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestReportCSVNeutralizesFormulas(t *testing.T) {
	var buf bytes.Buffer
	if err := writeCSV(&buf, hostileResult()); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	cells := map[string]bool{}
	for _, rec := range recs[1:] {
		for _, c := range rec {
			cells[c] = true
		}
	}
	for _, want := range []string{
		`'=cmd|' /C calc'!A0`, `'+SUM(A1:A9)`, `'@HYPERLINK("http://x")`, `'-2+3`, "'\t=1+1", "'\r=1+1",
		"-1.5", "-0.5", "-2.5", // numbers stay numbers: a model named -1.5, costs, z-scores
		retitle, reorder, nulTab, // other names stay exact: CSV is data
	} {
		if !cells[want] {
			t.Errorf("CSV has no cell %q", want)
		}
	}
	for c := range cells {
		if c != "" && strings.ContainsRune("=+@\t\r", rune(c[0])) {
			t.Errorf("CSV cell %q would run as a formula", c)
		}
		if c != "" && c[0] == '-' {
			if _, err := strconv.ParseFloat(c, 64); err != nil {
				t.Errorf("CSV cell %q would run as a formula", c)
			}
		}
	}
	if got := recs[len(recs)-1][col["z_score"]]; got != "-2.5" {
		t.Errorf("anomaly z-score = %q, want -2.5", got)
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"":          "",
		"gpt-4o":    "gpt-4o",
		"a=b":       "a=b",
		"=1+1":      "'=1+1",
		"+1+1":      "'+1+1",
		"-1+1":      "'-1+1",
		"@SUM(A1)":  "'@SUM(A1)",
		"\t=1":      "'\t=1",
		"\r=1":      "'\r=1",
		"-1.5":      "-1.5",
		"+2":        "+2",
		"-0.000001": "-0.000001",
		"-1e-07":    "-1e-07",
		"-":         "'-",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReportJSONEscapesHostileNames(t *testing.T) {
	in := hostileResult()
	var buf bytes.Buffer
	if err := writeJSON(&buf, in); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if r, bad := terminalUnsafe(out); bad {
		t.Errorf("JSON prints %U raw:\n%s", r, out)
	}
	for _, want := range []string{`\u001b]0;pwned\u0007`, `\u009b31mred`, `\u202e\u2066fnoc\u2069`, `\u0000b\tc\nd\u007f`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
	// The escapes decode to the names as stored (bytes that are not UTF-8
	// become U+FFFD, as encoding/json always does).
	var got Result
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, out)
	}
	if got.Models[0].Provider != c1CSI || got.Models[0].Model != reorder || got.Teams[0].Team != retitle ||
		got.Projects[0].Team != clearLine || got.Projects[0].Project != nulTab || got.Anomalies[0].Team != "bad\ufffd\ufffd" {
		t.Errorf("names do not survive the round trip: %+v", got)
	}
}

// TestConfidenceSection: the table and the CSV carry the confidence rows
// with their split costs and codes.
func TestConfidenceSection(t *testing.T) {
	r := hostileResult()
	var table, sheet bytes.Buffer
	if err := writeTable(&table, r); err != nil {
		t.Fatal(err)
	}
	if s := table.String(); !strings.Contains(s, "PRICING CONFIDENCE BY MODEL") ||
		!strings.Contains(s, "-0.500000  0.250000      2                  snapshot_fallback,unknown_service_tier  3") {
		t.Errorf("table:\n%s", s)
	}
	if err := writeCSV(&sheet, r); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&sheet).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, rec := range recs {
		if rec[0] != "pricing_confidence" {
			continue
		}
		if len(rec) != len(csvHeader) {
			t.Fatalf("row has %d columns, header %d: %q", len(rec), len(csvHeader), rec)
		}
		if rec[6] == "6" {
			found = true
			if rec[8] != "3" || rec[13] != "-0.25" || rec[18] != "-0.5" || rec[19] != "2" || rec[20] != "0.25" || rec[21] != "snapshot_fallback unknown_service_tier" {
				t.Errorf("confidence row %q", rec)
			}
		}
	}
	if !found {
		t.Errorf("no confidence row in:\n%q", recs)
	}
}
