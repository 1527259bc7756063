package bus

import (
	"math/bits"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
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
	// bytes holds the batch buffers by size class: class k those of
	// capacity from minPooledBatch<<k up to twice that.
	bytes [numBatchClasses]sync.Pool // *[]byte
	recs  sync.Pool                  // *[]kgo.Record
}

// Batch buffers the pool keeps are from minPooledBatch to maxPooledBatch
// long; larger ones, rare, are left to the garbage collector.
const (
	minPooledBatch  = 64 << 10
	maxPooledBatch  = 8 << 20
	numBatchClasses = 8 // minPooledBatch << 7 == maxPooledBatch
)

// Pooled returns the client option that makes a consumer use p.
func Pooled(p *FetchPool) kgo.Opt { return kgo.WithPools(p) }

// GetDecompressBytes returns a buffer to decompress a batch into, which
// comes back to the pool once the batch's records are recycled, or nil
// for a batch longer than the pool keeps (the codec then allocates one).
//
// The client zeroes a buffer's whole capacity when it comes back, so a
// long buffer lent to a short batch costs more to clear than the batch
// costs to decompress. Snappy, the producers' default, says how long a
// batch decodes to, and so does a zstd frame that carries its length: the
// buffer comes from the smallest size class that holds the batch, made
// afresh when that class has none free, so it is never much longer. A
// batch of unknown length (lz4, gzip, xerial snappy) gets one of the
// smallest class, which the codec grows as it needs; the grown buffer
// comes back in the class it then fits.
func (p *FetchPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	need := 0
	switch codec {
	case kgo.CodecSnappy:
		// (Not the xerial framing Java clients write: unknown then.)
		if n, err := s2.DecodedLen(src); err == nil {
			if n > maxPooledBatch {
				return nil
			}
			need = n
		}
	case kgo.CodecZstd:
		// A producer's frame says its length, as franz-go's does.
		var h zstd.Header
		if h.Decode(src) == nil && h.HasFCS {
			if h.FrameContentSize > maxPooledBatch {
				return nil
			}
			need = int(h.FrameContentSize)
		}
	}
	k := batchClass(need)
	if b, ok := p.bytes[k].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, minPooledBatch<<k)
}

// batchClass is the smallest size class whose buffers hold n bytes.
func batchClass(n int) int {
	if n <= minPooledBatch {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(minPooledBatch-1)
}

// PutDecompressBytes takes back a batch's buffer, zeroed by the client,
// into the largest class it can serve.
func (p *FetchPool) PutDecompressBytes(b []byte) {
	if cap(b) < minPooledBatch || cap(b) > maxPooledBatch {
		return
	}
	k := bits.Len(uint(cap(b))) - bits.Len(minPooledBatch)
	p.bytes[k].Put(&b)
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
