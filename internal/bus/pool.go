package bus

import (
	"math/bits"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FetchPool lends a consumer the memory of the batches it fetches: the
// decompressed bytes of a batch and the records read from them. Without
// it the client allocates both afresh for every batch, about as many bytes
// as the stage reads, which is most of what enrich and aggregate allocate
// and so most of their garbage collection.
//
// A consumer given the pool (Pooled) must call Recycle on every record
// once nothing refers to its key, value or headers any more; a batch's
// memory goes back to the pool when its last record is recycled. A record
// never recycled costs nothing but the reuse: its memory is collected as
// usual. The pool keeps nothing across garbage collections that nobody
// uses, so an idle stage holds no more than before.
type FetchPool struct {
	bytes sync.Pool // *[]byte
	recs  sync.Pool // *[]kgo.Record
}

// maxPooledBatch bounds the decompressed batches the pool keeps: larger
// ones, rare, are left to the garbage collector.
const maxPooledBatch = 8 << 20

// Pooled returns the client option that makes a consumer use p.
func Pooled(p *FetchPool) kgo.Opt { return kgo.WithPools(p) }

// GetDecompressBytes returns a buffer to decompress a batch into, or nil
// when none is free; the codec then allocates one, which comes back to the
// pool once the batch's records are recycled. Snappy, the producers'
// default, says how long the batch decodes to: a buffer too short for it
// would only be thrown away by the codec, so a longer one is made in its
// place, its length rounded up to a power of two, so that the buffers in
// the pool come in a few sizes that each fit most batches.
func (p *FetchPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	need := 0
	if codec == kgo.CodecSnappy {
		if n, err := s2.DecodedLen(src); err == nil && n <= maxPooledBatch {
			need = n
		}
	}
	if b, ok := p.bytes.Get().(*[]byte); ok && cap(*b) >= need {
		return (*b)[:0]
	}
	if need == 0 {
		return nil
	}
	return make([]byte, 0, max(minPooledBatch, 1<<bits.Len(uint(need-1))))
}

// minPooledBatch is the least the pool makes a batch buffer.
const minPooledBatch = 64 << 10

// PutDecompressBytes takes back a batch's buffer, zeroed by the client.
func (p *FetchPool) PutDecompressBytes(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBatch {
		return
	}
	p.bytes.Put(&b)
}

// GetRecords returns room for n records, made with room to spare when
// the free one is too short.
func (p *FetchPool) GetRecords(n int) []kgo.Record {
	if r, ok := p.recs.Get().(*[]kgo.Record); ok && cap(*r) >= n {
		return (*r)[:0]
	}
	return make([]kgo.Record, 0, n+n/4)
}

// PutRecords takes back the records of a batch, cleared by Recycle.
func (p *FetchPool) PutRecords(r []kgo.Record) {
	if cap(r) == 0 {
		return
	}
	p.recs.Put(&r)
}
