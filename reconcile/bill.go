package reconcile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Bill formats, as --format names them.
const (
	FormatOpenAI     = "openai"
	FormatAnthropic  = "anthropic"
	FormatAWSCUR     = "aws-cur"
	FormatGCPBilling = "gcp-billing"
)

// Formats lists every format Import reads.
var Formats = []string{FormatOpenAI, FormatAnthropic, FormatAWSCUR, FormatGCPBilling}

// Providers as aivis events name them (the catalog's names).
const (
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
	ProviderBedrock   = "aws.bedrock"
	ProviderGemini    = "gcp.gemini"
)

// Meters a bill line charges for. Token quantities follow the bill's own
// split: MeterInput is input that was neither read from nor written to a
// cache, so the inclusive input aivis stores is the sum of the three.
const (
	MeterInput      = "input"
	MeterCacheRead  = "cache_read"
	MeterCacheWrite = "cache_write"
	MeterOutput     = "output"
	// MeterOther is anything else: tool calls, storage, a line without a
	// meter (a total).
	MeterOther = "other"
)

// Line is one billed amount of one day, provider and model.
type Line struct {
	// Day is the UTC day the usage started, at midnight.
	Day      time.Time
	Provider string
	// Model is the aivis name of the model (see Models), the bill's own
	// name when no mapping is known, or empty when the bill does not say
	// which model the cost belongs to.
	Model string
	Meter string
	// CostUSD is what the line bills; credits and discounts are negative.
	CostUSD decimal.Decimal
	// Credit marks credits, discounts and refunds.
	Credit bool
	// Tokens is the quantity in tokens, when the export gives it (HasTokens).
	Tokens    int64
	HasTokens bool
	// Ambiguous explains a bill name that maps to several aivis models;
	// Model is then the bill's name, not a guess.
	Ambiguous string
	// Where is "file:line" of the row, for messages.
	Where string
}

// Bill is what an importer read from one file.
type Bill struct {
	Format string
	Lines  []Line
	// Notes say what was skipped or could not be mapped, once per kind.
	Notes []string
}

func (b *Bill) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	for _, o := range b.Notes {
		if o == n {
			return
		}
	}
	b.Notes = append(b.Notes, n)
}

// ImportError is a bad row: it names the file, the line (and CSV row)
// and the field, so the export can be fixed or the row reported.
type ImportError struct {
	File  string
	Line  int // 1-based line of the file; 0 when unknown
	Row   int // 1-based data row of a CSV (header excluded); 0 for JSON
	Field string
	Err   error
}

func (e *ImportError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Row > 0 {
		fmt.Fprintf(&b, " (row %d)", e.Row)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ImportError) Unwrap() error { return e.Err }

// maxBillBytes bounds what Import reads: a month of a large account's
// daily exports is far below it.
const maxBillBytes = 1 << 30

// Import reads one bill file in format (empty: detected from the content)
// and maps its rows with models. name is used in errors.
func Import(format, name string, r io.Reader, models *Models) (*Bill, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBillBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading bill %s: %w", name, err)
	}
	if len(data) > maxBillBytes {
		return nil, fmt.Errorf("reading bill %s: larger than %d bytes; split the export by month", name, maxBillBytes)
	}
	if format == "" {
		format, err = Detect(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	var b *Bill
	switch format {
	case FormatOpenAI:
		b, err = ParseOpenAI(name, data, models)
	case FormatAnthropic:
		b, err = ParseAnthropic(name, data, models)
	case FormatAWSCUR:
		b, err = ParseAWSCUR(name, data, models)
	case FormatGCPBilling:
		b, err = ParseGCPBilling(name, data, models)
	default:
		return nil, fmt.Errorf("bill format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Detect guesses the format of an export from its first bytes.
func Detect(data []byte) (string, error) {
	head := data[:min(len(data), 4096)]
	t := bytes.TrimSpace(head)
	switch {
	case bytes.Contains(head, []byte("lineItem/")) || bytes.Contains(head, []byte("line_item_usage_type")):
		return FormatAWSCUR, nil
	case bytes.Contains(head, []byte("organization.costs.result")) || bytes.Contains(head, []byte("organization.usage.")):
		return FormatOpenAI, nil
	case bytes.Contains(head, []byte(`"starting_at"`)):
		return FormatAnthropic, nil
	case bytes.Contains(head, []byte("sku.description")) || bytes.Contains(head, []byte(`"sku"`)):
		return FormatGCPBilling, nil
	case len(t) == 0:
		return "", errors.New("the bill is empty")
	}
	return "", fmt.Errorf("cannot tell the bill's format from its content: pass --format (%s)", strings.Join(Formats, ", "))
}

// dayOf is the UTC midnight of t.
func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// maxAbsUSD bounds a line's amount: larger values are a broken export,
// not a bill, and would only hide real differences.
var maxAbsUSD = decimal.New(1, 12)

// parseUSD reads a decimal amount exactly (no float on the way).
func parseUSD(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return decimal.Decimal{}, errors.New("empty amount")
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%q is not a decimal amount", s)
	}
	if d.Abs().GreaterThan(maxAbsUSD) {
		return decimal.Decimal{}, fmt.Errorf("%q is beyond ±%s: not a plausible bill amount", s, maxAbsUSD)
	}
	return d, nil
}

// maxTokens bounds a quantity; it keeps sums far from int64 overflow.
const maxTokens = int64(1) << 50

// parseTokens reads a whole, non-negative token quantity; exports write
// quantities as decimals ("1500000.0000000000").
func parseTokens(s string) (int64, error) {
	s = strings.TrimSpace(s)
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if d.IsNegative() {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if !d.IsInteger() {
		return 0, fmt.Errorf("%q is not a whole number of tokens", s)
	}
	if d.GreaterThan(decimal.NewFromInt(maxTokens)) {
		return 0, fmt.Errorf("%q is more tokens than any export holds", s)
	}
	return d.IntPart(), nil
}
