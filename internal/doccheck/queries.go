package doccheck

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Query is one SQL text people run: a dashboard panel or variable, or a
// cookbook block.
type Query struct {
	Name string
	SQL  string
}

// DashboardQueries returns every panel's and variable's SQL of the
// ClickHouse dashboards in deploy/grafana. Dashboards on a Prometheus data
// source hold PromQL, which deploy/prometheus's tests run.
func DashboardQueries(t testing.TB, root string) []Query {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana (%v)", err)
	}
	type target struct {
		RawSQL string `json:"rawSql"`
	}
	type panel struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var out []Query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []panel `json:"panels"`
			Templating struct {
				List []dashVar `json:"list"`
			} `json:"templating"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		base := filepath.Base(f)
		if promDashboard(d.Templating.List) {
			continue
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				out = append(out, Query{fmt.Sprintf("%s variable %s", base, v.Name), fmt.Sprint(v.Query)})
			}
		}
		var walk func(ps []panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Datasource.Type != "grafana-clickhouse-datasource" {
					t.Errorf("%s panel %q: data source %q, want grafana-clickhouse-datasource", base, p.Title, p.Datasource.Type)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s panel %q has no query", base, p.Title)
				}
				for i, tg := range p.Targets {
					out = append(out, Query{fmt.Sprintf("%s panel %q #%d", base, p.Title, i+1), tg.RawSQL})
				}
			}
		}
		walk(d.Panels)
	}
	if len(out) == 0 {
		t.Fatal("no ClickHouse dashboard in deploy/grafana")
	}
	return out
}

// dashVar is a dashboard variable.
type dashVar struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"`
}

// promDashboard reports whether a dashboard's data source variable picks
// Prometheus.
func promDashboard(vars []dashVar) bool {
	for _, v := range vars {
		if v.Type == "datasource" && v.Query == "prometheus" {
			return true
		}
	}
	return false
}

// sqlBlock finds the ```sql blocks of a Markdown file.
var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// CookbookQueries returns every SQL block of docs/cookbook.md, titled by
// the heading above it.
func CookbookQueries(t testing.TB, root string) []Query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "cookbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var out []Query
	for _, m := range sqlBlock.FindAllStringSubmatchIndex(text, -1) {
		heading := "cookbook"
		if i := strings.LastIndex(text[:m[0]], "\n## "); i >= 0 {
			heading = strings.TrimSpace(strings.SplitN(text[i+4:], "\n", 2)[0])
		}
		sql := strings.TrimSpace(text[m[2]:m[3]])
		sql = strings.TrimSuffix(sql, ";")
		if strings.Contains(sql, ";") {
			t.Errorf("cookbook %q: one statement per block, so that each is checked alone", heading)
		}
		out = append(out, Query{fmt.Sprintf("cookbook #%d (%s)", len(out)+1, heading), sql})
	}
	if len(out) < 10 {
		t.Fatalf("found only %d SQL blocks in docs/cookbook.md; the scan is broken", len(out))
	}
	return out
}

// READMEQueries returns every statement of README.md's SQL blocks, named
// by the comment line above it: the queries a new user copies first. A
// statement ends with the line that ends in ';' (or with its block);
// comment lines are left out, so a ';' in a comment splits nothing.
func READMEQueries(t testing.TB, root string) []Query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []Query
	for _, m := range sqlBlock.FindAllStringSubmatch(string(b), -1) {
		var name string
		var sql []string
		end := func() {
			if stmt := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.Join(sql, "\n")), ";")); stmt != "" {
				out = append(out, Query{fmt.Sprintf("README #%d (%s)", len(out)+1, name), stmt})
			}
			name, sql = "", nil
		}
		for _, line := range strings.Split(m[1], "\n") {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" && len(sql) == 0 {
				continue
			}
			if strings.HasPrefix(trimmed, "--") {
				if len(sql) == 0 && name == "" {
					name = strings.TrimSpace(strings.TrimPrefix(trimmed, "--"))
				}
				continue
			}
			sql = append(sql, line)
			if strings.HasSuffix(trimmed, ";") {
				end()
			}
		}
		end()
	}
	if len(out) < 5 {
		t.Fatalf("found only %d SQL statements in README.md; the scan is broken", len(out))
	}
	return out
}

// demoHint is a query `make demo` prints for the user to run next.
var demoHint = regexp.MustCompile(`(?m)^\s*clickhouse-client -d \$db -q "([^"]+)"$`)

// DemoQueries returns the queries deploy/scripts/demo.sh suggests at its
// end, the first ones a new user types.
func DemoQueries(t testing.TB, root string) []Query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "scripts", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var out []Query
	for _, m := range demoHint.FindAllStringSubmatch(string(b), -1) {
		out = append(out, Query{fmt.Sprintf("demo hint #%d", len(out)+1), strings.TrimSpace(m[1])})
	}
	if len(out) < 2 {
		t.Fatalf("found only %d suggested queries in deploy/scripts/demo.sh; the scan is broken", len(out))
	}
	return out
}

// grafanaMacro finds the data source plugin's macros and Grafana's
// variables that the dashboards use.
var (
	timeFilter = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)
	leftover   = regexp.MustCompile(`\$\{?[A-Za-z_]+`)
)

// Substitute writes in what Grafana and the ClickHouse data source plugin
// would: the time range of the fixture, a 5-minute interval, and every
// value of each multi-value variable.
func Substitute(t testing.TB, q Query, f *Fixture) string {
	t.Helper()
	from, to := f.Start().Unix(), f.End.Unix()
	s := timeFilter.ReplaceAllString(q.SQL, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", from, to))
	s = strings.NewReplacer(
		"$__fromTime", fmt.Sprintf("toDateTime(%d)", from),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", to),
		"$__interval_s", "300",
		"${team:singlequote}", "'search','ml','unattributed'",
		"${model:singlequote}", "'gpt-4o','claude-sonnet-4','gpt-4o-mini'",
		"${provider:singlequote}", "'openai','anthropic'",
	).Replace(s)
	if m := leftover.FindString(s); m != "" {
		t.Fatalf("%s: %s is left after substitution; teach the test what Grafana puts there", q.Name, m)
	}
	return s
}

// Querier runs a query: the ClickHouse sink's Store.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Result is the rows of one query as Go values, with the ClickHouse type
// of each column.
type Result struct {
	Types []string
	Rows  [][]any
}

// RunQuery returns every row of q.
func RunQuery(ctx context.Context, db Querier, q string) (Result, error) {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return Result{}, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	res := Result{}
	for _, ct := range types {
		res.Types = append(res.Types, ct.DatabaseTypeName())
	}
	var out [][]any
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return Result{}, err
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = reflect.ValueOf(d).Elem().Interface()
		}
		out = append(out, row)
	}
	res.Rows = out
	return res, rows.Err()
}

// TSV writes rows as ClickHouse's TSV output format writes them, so that
// results from 18.16 can be compared with a current server's.
func (r Result) TSV() string {
	var b strings.Builder
	for _, row := range r.Rows {
		for i, v := range row {
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(tsvValue(v, r.Types[i]))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// floatText writes x as ClickHouse's text formats do: the shortest digits
// that read back as x, without an exponent from 1e-6 up to 1e21
// (250000000000000000, not 2.5e+17), and outside it with a bare exponent
// (1.5e21, 1e-7).
func floatText(x float64, bits int) string {
	switch a := math.Abs(x); {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 0):
		if x < 0 {
			return "-inf"
		}
		return "inf"
	case a == 0 || a >= 1e-6 && a < 1e21:
		return strconv.FormatFloat(x, 'f', -1, bits)
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(x, 'e', -1, bits), "e")
	sign := ""
	if exp[0] == '-' {
		sign = "-"
	}
	return mant + "e" + sign + strings.TrimLeft(exp[1:], "0")
}

func tsvValue(v any, typ string) string {
	// A Nullable column scans into a pointer: NULL is nil, written \N
	// as ClickHouse's TSV does.
	if rv := reflect.ValueOf(v); v == nil || rv.Kind() == reflect.Pointer && rv.IsNil() {
		return `\N`
	} else if rv.Kind() == reflect.Pointer {
		return tsvValue(rv.Elem().Interface(), strings.TrimSuffix(strings.TrimPrefix(typ, "Nullable("), ")"))
	}
	switch x := v.(type) {
	case decimal.Decimal:
		return x.String()
	case float64:
		return floatText(x, 64)
	case float32:
		return floatText(float64(x), 32)
	case time.Time:
		if typ == "Date" {
			return x.Format("2006-01-02")
		}
		return x.UTC().Format("2006-01-02 15:04:05")
	case string:
		return strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n").Replace(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}
