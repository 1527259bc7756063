package focus

import (
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/shopspring/decimal"
)

// The Parquet types of FOCUS's data types: money and quantities as
// DECIMAL(38, 12), times as UTC timestamps.
var (
	decimalType  = &arrow.Decimal128Type{Precision: 38, Scale: 12}
	dateTimeType = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
)

// ArrowSchema is the export's schema in Parquet files.
func ArrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(Columns))
	for i, c := range Columns {
		var t arrow.DataType = arrow.BinaryTypes.String
		switch c.Type {
		case "Decimal":
			t = decimalType
		case "DateTime":
			t = dateTimeType
		}
		fields[i] = arrow.Field{Name: c.Name, Type: t, Nullable: c.Nullable}
	}
	return arrow.NewSchema(fields, nil)
}

// batchRows is how many rows go into one record batch (and row group part).
const batchRows = 8192

type parquetWriter struct {
	fw   *pqarrow.FileWriter
	b    *array.RecordBuilder
	opts Options
	n    int
}

// NewParquetWriter writes a Zstandard-compressed Parquet file through
// Arrow record batches.
func NewParquetWriter(w io.Writer, opts Options) (Writer, error) {
	schema := ArrowSchema()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("starting the Parquet file: %w", err)
	}
	return &parquetWriter{fw: fw, b: array.NewRecordBuilder(memory.DefaultAllocator, schema), opts: opts}, nil
}

func (p *parquetWriter) Write(r Row) error {
	for i, v := range r.values(p.opts) {
		fb := p.b.Field(i)
		if v == nil {
			fb.AppendNull()
			continue
		}
		switch Columns[i].Type {
		case "Decimal":
			n, err := toDecimal128(*v)
			if err != nil {
				return fmt.Errorf("column %s: %w", Columns[i].Name, err)
			}
			fb.(*array.Decimal128Builder).Append(n)
		case "DateTime":
			t, err := time.Parse(time.RFC3339, *v)
			if err != nil {
				return fmt.Errorf("column %s: %w", Columns[i].Name, err)
			}
			fb.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMilli()))
		default:
			fb.(*array.StringBuilder).Append(*v)
		}
	}
	p.n++
	if p.n == batchRows {
		return p.flush()
	}
	return nil
}

func (p *parquetWriter) flush() error {
	rec := p.b.NewRecord()
	defer rec.Release()
	p.n = 0
	if rec.NumRows() == 0 {
		return nil
	}
	return p.fw.WriteBuffered(rec)
}

func (p *parquetWriter) Close() error {
	defer p.b.Release()
	err := p.flush()
	if cerr := p.fw.Close(); err == nil {
		err = cerr
	}
	return err
}

// toDecimal128 converts an exact decimal string to DECIMAL(38, 12); more
// than 12 decimal places would be rounded, so it is an error.
func toDecimal128(s string) (decimal128.Num, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal128.Num{}, err
	}
	shifted := d.Shift(12)
	if !shifted.IsInteger() {
		return decimal128.Num{}, fmt.Errorf("%s has more than 12 decimal places", s)
	}
	n := decimal128.FromBigInt(shifted.BigInt())
	if !n.FitsInPrecision(38) {
		return decimal128.Num{}, fmt.Errorf("%s does not fit DECIMAL(38, 12)", s)
	}
	return n, nil
}

// FromDecimal128 converts a DECIMAL(38, 12) value back to a decimal.
func FromDecimal128(n decimal128.Num) decimal.Decimal {
	return decimal.NewFromBigInt(n.BigInt(), -12)
}
