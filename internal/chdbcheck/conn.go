package chdbcheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/aivis-dev/aivis/internal/testenv"
)

// Conn is a driver.Conn on one chDB session in a Python process
// (deploy/scripts/chdb_serve.py): unlike a Recorder it runs every
// statement as it comes and answers queries with their rows, so the same
// Go code (the report, verify, the aggregator's read-back) can run on
// current ClickHouse and on 18.16 and its results be compared. Parameters
// are bound client-side (Bind), batches become INSERT … VALUES. Methods
// the aivis code does not call panic through the embedded nil interface.
type Conn struct {
	driver.Conn
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	// Statements counts the statements run.
	Statements int
}

// Open starts a chDB session for t and closes it when t ends; it skips t
// where chDB is not installed (fails it under CI=true).
func Open(t testing.TB) *Conn {
	t.Helper()
	py := Python(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("finding the repository root for chdb_serve.py: %v", err)
	}
	cmd := exec.Command(py, filepath.Join(root, "deploy", "scripts", "chdb_serve.py"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chdb_serve.py: %v", err)
	}
	c := &Conn{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("chdb_serve.py: %v\n%s", err, stderr.String())
		}
	})
	return c
}

type answer struct {
	Error string `json:"error"`
	Meta  []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"meta"`
	Data [][]any `json:"data"`
}

// run executes sql and returns its rows.
func (c *Conn) run(sql string) (*rows, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := json.Marshal(map[string]string{"sql": sql})
	if err != nil {
		return nil, err
	}
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("sending a statement to chDB: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("reading chDB's answer: %w", err)
	}
	c.Statements++
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var a answer
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("decoding chDB's answer: %w", err)
	}
	if a.Error != "" {
		return nil, fmt.Errorf("chDB: %s\n--- statement:\n%s", a.Error, sql)
	}
	r := &rows{data: a.Data, pos: -1}
	for _, m := range a.Meta {
		r.names = append(r.names, m.Name)
		r.types = append(r.types, m.Type)
	}
	return r, nil
}

// Query runs the query.
func (c *Conn) Query(_ context.Context, query string, args ...any) (driver.Rows, error) {
	sql, err := Bind(query, args...)
	if err != nil {
		return nil, err
	}
	return c.run(sql)
}

// QueryRow runs the query; its Scan reads the first row.
func (c *Conn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	r, err := c.Query(ctx, query, args...)
	if err != nil {
		return &row{err: err}
	}
	return &row{rows: r.(*rows)}
}

// Exec runs the statement.
func (c *Conn) Exec(ctx context.Context, query string, args ...any) error {
	_, err := c.Query(ctx, query, args...)
	return err
}

// PrepareBatch returns a batch that runs an INSERT … VALUES on Send.
func (c *Conn) PrepareBatch(_ context.Context, query string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &batch{add: func(sql string) error { _, err := c.run(sql); return err }, query: query}, nil
}

// Ping checks the session answers.
func (c *Conn) Ping(ctx context.Context) error { return c.Exec(ctx, "SELECT 1") }

// ServerVersion is not known without a query; aivis asks SELECT version().
func (c *Conn) ServerVersion() (*driver.ServerVersion, error) {
	return nil, fmt.Errorf("chDB has no server handshake; query SELECT version()")
}

// Close ends the session.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	c.in.Close()
	err := c.cmd.Wait()
	c.cmd = nil
	return err
}

type row struct {
	rows *rows
	err  error
}

func (r *row) Err() error { return r.err }

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	if !r.rows.Next() {
		return fmt.Errorf("sql: no rows in result set")
	}
	return r.rows.Scan(dest...)
}

func (r *row) ScanStruct(any) error { return fmt.Errorf("ScanStruct is not supported on chDB") }

type rows struct {
	names, types []string
	data         [][]any
	pos          int
}

func (r *rows) Next() bool {
	r.pos++
	return r.pos < len(r.data)
}

func (r *rows) Scan(dest ...any) error {
	if r.pos < 0 || r.pos >= len(r.data) {
		return fmt.Errorf("Scan without a row")
	}
	vals := r.data[r.pos]
	if len(dest) != len(vals) {
		return fmt.Errorf("Scan: %d destinations for %d columns", len(dest), len(vals))
	}
	for i, d := range dest {
		if err := assign(reflect.ValueOf(d), vals[i], r.types[i]); err != nil {
			return fmt.Errorf("column %d %s (%s): %w", i+1, r.names[i], r.types[i], err)
		}
	}
	return nil
}

func (r *rows) ScanStruct(any) error { return fmt.Errorf("ScanStruct is not supported on chDB") }
func (r *rows) Totals(...any) error  { return nil }
func (r *rows) Columns() []string    { return r.names }
func (r *rows) Close() error         { return nil }
func (r *rows) Err() error           { return nil }
func (r *rows) HasData() bool        { return len(r.data) > 0 }

func (r *rows) ColumnTypes() []driver.ColumnType {
	out := make([]driver.ColumnType, len(r.names))
	for i := range r.names {
		out[i] = columnType{name: r.names[i], typ: r.types[i]}
	}
	return out
}

type columnType struct{ name, typ string }

func (c columnType) Name() string             { return c.name }
func (c columnType) Nullable() bool           { return strings.HasPrefix(c.typ, "Nullable(") }
func (c columnType) ScanType() reflect.Type   { return scanType(c.typ) }
func (c columnType) DatabaseTypeName() string { return c.typ }

// scanType is the Go type clickhouse-go scans a column of type typ into.
func scanType(typ string) reflect.Type {
	inner := func(prefix string) (string, bool) {
		if strings.HasPrefix(typ, prefix+"(") && strings.HasSuffix(typ, ")") {
			return typ[len(prefix)+1 : len(typ)-1], true
		}
		return "", false
	}
	if t, ok := inner("Nullable"); ok {
		return reflect.PointerTo(scanType(t))
	}
	if t, ok := inner("LowCardinality"); ok {
		return scanType(t)
	}
	if t, ok := inner("Array"); ok {
		return reflect.SliceOf(scanType(t))
	}
	switch {
	case typ == "String" || strings.HasPrefix(typ, "FixedString") || strings.HasPrefix(typ, "Enum"):
		return reflect.TypeOf("")
	case strings.HasPrefix(typ, "Decimal"):
		return reflect.TypeOf(decimal.Decimal{})
	case strings.HasPrefix(typ, "DateTime") || typ == "Date" || typ == "Date32":
		return reflect.TypeOf(time.Time{})
	case typ == "Bool":
		return reflect.TypeOf(false)
	}
	for _, t := range []any{uint8(0), uint16(0), uint32(0), uint64(0), int8(0), int16(0), int32(0), int64(0), float32(0), float64(0)} {
		if strings.EqualFold(reflect.TypeOf(t).Name(), typ) {
			return reflect.TypeOf(t)
		}
	}
	if typ == "Int128" || typ == "UInt128" || typ == "Int256" || typ == "UInt256" {
		return reflect.TypeOf(big.Int{})
	}
	return reflect.TypeOf((*any)(nil)).Elem()
}

// unwrap returns T of wrapper(T), or typ itself.
func unwrap(typ, wrapper string) string {
	if strings.HasPrefix(typ, wrapper+"(") && strings.HasSuffix(typ, ")") {
		return typ[len(wrapper)+1 : len(typ)-1]
	}
	return typ
}

// assign stores the JSON value v of a column of ClickHouse type typ in the
// variable dst points to, converting it as clickhouse-go would.
func assign(dst reflect.Value, v any, typ string) error {
	if dst.Kind() != reflect.Pointer || dst.IsNil() {
		return fmt.Errorf("destination %s is not a pointer", dst.Type())
	}
	e := dst.Elem()
	typ = unwrap(typ, "LowCardinality")
	if v == nil {
		e.Set(reflect.Zero(e.Type()))
		return nil
	}
	if e.Kind() == reflect.Pointer {
		p := reflect.New(e.Type().Elem())
		if err := assign(p, v, unwrap(typ, "Nullable")); err != nil {
			return err
		}
		e.Set(p)
		return nil
	}
	text := fmt.Sprint(v)
	switch d := e.Addr().Interface().(type) {
	case *decimal.Decimal:
		x, err := decimal.NewFromString(text)
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *time.Time:
		layout := time.DateTime
		if len(text) == len(time.DateOnly) {
			layout = time.DateOnly
		}
		x, err := time.ParseInLocation(layout, text, time.UTC)
		if err != nil {
			return err
		}
		*d = x
		return nil
	case *big.Int:
		if _, ok := d.SetString(text, 10); !ok {
			return fmt.Errorf("%q is not an integer", text)
		}
		return nil
	case *any:
		t := scanType(typ)
		if t.Kind() == reflect.Interface {
			*d = v
			return nil
		}
		p := reflect.New(t)
		if err := assign(p, v, typ); err != nil {
			return err
		}
		*d = p.Elem().Interface()
		return nil
	}
	switch e.Kind() {
	case reflect.String:
		e.SetString(text)
	case reflect.Bool:
		e.SetBool(text == "true" || text == "1")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return err
		}
		e.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if b, ok := v.(bool); ok {
			text = map[bool]string{true: "1", false: "0"}[b]
		}
		x, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return err
		}
		e.SetUint(x)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return err
		}
		e.SetFloat(x)
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%v is not an array", v)
		}
		elemType := unwrap(typ, "Array")
		s := reflect.MakeSlice(e.Type(), len(items), len(items))
		for i, it := range items {
			if err := assign(s.Index(i).Addr(), it, elemType); err != nil {
				return err
			}
		}
		e.Set(s)
	default:
		return fmt.Errorf("no conversion of %v to %s", v, e.Type())
	}
	return nil
}
