package chdbcheck

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Statement is one SQL statement with its parameters already written in as
// literals, named for the error message when it fails.
type Statement struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
	// Want, when set, is the expected result as TSV lines, compared
	// without regard to their order.
	Want string `json:"want,omitempty"`
}

// Recorder is a driver.Conn that runs nothing: it records every statement
// the code sends, with the `?` parameters bound as literals and batch
// inserts rewritten as INSERT … VALUES. Every query answers one row whose
// Scan leaves the destinations at their zero values, so that code which
// queries again per row (the report's latencies) still sends its follow-up
// queries. Methods the aivis code does not call panic through the embedded
// nil interface.
type Recorder struct {
	driver.Conn
	// Name labels the statements recorded next ("report", "verify", …).
	Name       string
	Statements []Statement
	// Err is the first statement that could not be recorded.
	Err error
}

// Add records sql under the current Name, binding args.
func (r *Recorder) Add(sql string, args ...any) {
	bound, err := Bind(sql, args...)
	if err != nil {
		if r.Err == nil {
			r.Err = fmt.Errorf("%s: %w", r.Name, err)
		}
		return
	}
	r.Statements = append(r.Statements, Statement{
		Name: fmt.Sprintf("%s #%d", r.Name, len(r.Statements)+1),
		SQL:  bound,
	})
}

// Want sets the expected result of the statements recorded under the name
// group whose SQL contains contains, and returns how many it set.
func (r *Recorder) Want(group, contains string, tsvLines ...string) int {
	n := 0
	for i, st := range r.Statements {
		if strings.HasPrefix(st.Name, group+" #") && strings.Contains(st.SQL, contains) {
			r.Statements[i].Want = strings.Join(tsvLines, "\n") + "\n"
			n++
		}
	}
	return n
}

// Query records the query.
func (r *Recorder) Query(_ context.Context, query string, args ...any) (driver.Rows, error) {
	r.Add(query, args...)
	return &oneRow{}, nil
}

// QueryRow records the query.
func (r *Recorder) QueryRow(_ context.Context, query string, args ...any) driver.Row {
	r.Add(query, args...)
	return &oneRow{}
}

// Exec records the statement.
func (r *Recorder) Exec(_ context.Context, query string, args ...any) error {
	r.Add(query, args...)
	return nil
}

// PrepareBatch returns a batch that records an INSERT … VALUES on Send.
func (r *Recorder) PrepareBatch(_ context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &batch{add: func(sql string) error { r.Add(sql); return nil }, query: query}, nil
}

// Close does nothing.
func (r *Recorder) Close() error { return nil }

type oneRow struct{ done bool }

func (o *oneRow) Next() bool {
	if o.done {
		return false
	}
	o.done = true
	return true
}
func (o *oneRow) Scan(...any) error                { return nil }
func (o *oneRow) ScanStruct(any) error             { return nil }
func (o *oneRow) ColumnTypes() []driver.ColumnType { return nil }
func (o *oneRow) Totals(...any) error              { return nil }
func (o *oneRow) Columns() []string                { return nil }
func (o *oneRow) Close() error                     { return nil }
func (o *oneRow) Err() error                       { return nil }
func (o *oneRow) HasData() bool                    { return true }

// batch collects rows (Append) or whole columns (Column(i).Append).
type batch struct {
	driver.Batch
	add     func(sql string) error
	query   string
	rows    [][]any
	columns map[int]any
	sent    bool
}

func (b *batch) Append(v ...any) error {
	b.rows = append(b.rows, v)
	return nil
}

func (b *batch) Column(i int) driver.BatchColumn {
	if b.columns == nil {
		b.columns = map[int]any{}
	}
	return batchColumn{b: b, i: i}
}

type batchColumn struct {
	b *batch
	i int
}

func (c batchColumn) Append(v any) error {
	if reflect.ValueOf(v).Kind() != reflect.Slice {
		return fmt.Errorf("column %d: want a slice, got %T", c.i, v)
	}
	c.b.columns[c.i] = v
	return nil
}

func (c batchColumn) AppendRow(v any) error {
	return fmt.Errorf("column %d: AppendRow is not recorded", c.i)
}

func (b *batch) Send() error {
	if b.sent {
		return errors.New("batch sent twice")
	}
	b.sent = true
	rows := b.rows
	if len(b.columns) > 0 {
		n := -1
		for i := 0; i < len(b.columns); i++ {
			col, ok := b.columns[i]
			if !ok {
				return fmt.Errorf("%s: column %d has no values", b.query, i)
			}
			v := reflect.ValueOf(col)
			if n == -1 {
				n = v.Len()
				rows = make([][]any, n)
			}
			if v.Len() != n {
				return fmt.Errorf("%s: column %d has %d values, column 0 has %d", b.query, i, v.Len(), n)
			}
			for j := 0; j < n; j++ {
				rows[j] = append(rows[j], v.Index(j).Interface())
			}
		}
	}
	var sb strings.Builder
	sb.WriteString(b.query)
	sb.WriteString(" VALUES")
	for i, row := range rows {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString("\n(")
		for j, v := range row {
			if j > 0 {
				sb.WriteString(", ")
			}
			lit, err := Literal(v)
			if err != nil {
				return fmt.Errorf("%s: row %d column %d: %w", b.query, i, j, err)
			}
			sb.WriteString(lit)
		}
		sb.WriteString(")")
	}
	return b.add(sb.String())
}

func (b *batch) Abort() error { b.sent = true; return nil }
func (b *batch) Close() error { return nil }
func (b *batch) IsSent() bool { return b.sent }
func (b *batch) Flush() error { return nil }
func (b *batch) Rows() int    { return len(b.rows) }

// Columns is nil: the recorder keeps what is appended, not driver columns.
func (b *batch) Columns() []column.Interface { return nil }

// Bind writes args into the `?` placeholders of sql (outside quotes), as
// clickhouse-go binds positional parameters client-side.
func Bind(sql string, args ...any) (string, error) {
	var sb strings.Builder
	next := 0
	var quote byte
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(sql) {
				sb.WriteByte(c)
				i++
				c = sql[i]
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '?':
			if next >= len(args) {
				return "", fmt.Errorf("more placeholders than the %d arguments in %q", len(args), sql)
			}
			lit, err := Literal(args[next])
			if err != nil {
				return "", fmt.Errorf("argument %d: %w", next+1, err)
			}
			sb.WriteString(lit)
			next++
			continue
		}
		sb.WriteByte(c)
	}
	if next != len(args) {
		return "", fmt.Errorf("%d arguments for %d placeholders in %q", len(args), next, sql)
	}
	return sb.String(), nil
}

// Literal writes v as a ClickHouse literal.
func Literal(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return quote(x), nil
	case time.Time:
		// Unix seconds: a DateTime and a Date column both take them, and
		// they do not depend on the server's time zone.
		return "toDateTime(" + strconv.FormatInt(x.Unix(), 10) + ", 'UTC')", nil
	case decimal.Decimal:
		return x.String(), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'g', -1, 64), nil
	case reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range parts {
			p, err := Literal(rv.Index(i).Interface())
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("no literal for %T", v)
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}
