package reconcile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvTable reads a CSV export whose header names the columns. Columns are
// found by a normalized name (lower case, letters and digits only), so
// CUR's lineItem/UsageType and Data Exports' line_item_usage_type, or
// BigQuery's sku.description and sku_description, are the same column.
type csvTable struct {
	name   string
	r      *csv.Reader
	header []string
	index  map[string]int
	rec    []string
	row    int
}

func columnKey(s string) string { return familyKey(s) }

func newCSVTable(name string, data []byte) (*csvTable, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from spreadsheet tools
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ImportError{File: name, Line: 1, Err: errors.New("the file is empty: want a CSV header row")}
		}
		return nil, csvErr(name, 0, err)
	}
	t := &csvTable{name: name, r: r, header: header, index: map[string]int{}}
	for i, h := range header {
		k := columnKey(h)
		if _, dup := t.index[k]; !dup {
			t.index[k] = i
		}
	}
	return t, nil
}

func csvErr(name string, row int, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ImportError{File: name, Line: pe.Line, Row: row, Err: fmt.Errorf("invalid CSV: %v", pe.Err)}
	}
	return &ImportError{File: name, Row: row, Err: err}
}

// require checks that the header has every column, naming the missing.
func (t *csvTable) require(cols ...string) error {
	var missing []string
	for _, c := range cols {
		if _, ok := t.index[columnKey(c)]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return &ImportError{File: t.name, Line: 1, Field: strings.Join(missing, ", "),
			Err: errors.New("missing from the header row: is this the right export (--format)?")}
	}
	return nil
}

// next reads the next data row; false at the end.
func (t *csvTable) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	t.row++
	if err != nil {
		return false, csvErr(t.name, t.row, err)
	}
	t.rec = rec
	return true, nil
}

// get is the row's value of column col ("" when absent).
func (t *csvTable) get(col string) string {
	i, ok := t.index[columnKey(col)]
	if !ok || i >= len(t.rec) {
		return ""
	}
	return t.rec[i]
}

// line is the file line of the current row.
func (t *csvTable) line() int {
	l, _ := t.r.FieldPos(0)
	return l
}

// fail is an ImportError at the current row and column col.
func (t *csvTable) fail(col string, err error) error {
	field := col
	if i, ok := t.index[columnKey(col)]; ok {
		field = t.header[i]
	}
	return &ImportError{File: t.name, Line: t.line(), Row: t.row, Field: field, Err: err}
}

func (t *csvTable) where() string { return fmt.Sprintf("%s:%d", t.name, t.line()) }
