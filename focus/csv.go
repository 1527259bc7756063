package focus

import (
	"encoding/csv"
	"io"
)

type csvWriter struct {
	w    *csv.Writer
	opts Options
	rec  []string
}

// NewCSVWriter writes the header, then a line per row; null is the empty
// field.
func NewCSVWriter(w io.Writer, opts Options) (Writer, error) {
	cw := &csvWriter{w: csv.NewWriter(w), opts: opts, rec: make([]string, len(Columns))}
	for i, c := range Columns {
		cw.rec[i] = c.Name
	}
	return cw, cw.w.Write(cw.rec)
}

func (c *csvWriter) Write(r Row) error {
	for i, v := range r.values(c.opts) {
		c.rec[i] = ""
		if v != nil {
			c.rec[i] = *v
		}
	}
	return c.w.Write(c.rec)
}

func (c *csvWriter) Close() error {
	c.w.Flush()
	return c.w.Error()
}
