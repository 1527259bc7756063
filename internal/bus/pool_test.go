package bus

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// countingPool is a FetchPool that counts the buffers it hands out again.
type countingPool struct {
	*FetchPool
	reused int
}

func (p *countingPool) GetDecompressBytes(src []byte, codec kgo.CompressionCodecType) []byte {
	b := p.FetchPool.GetDecompressBytes(src, codec)
	if b != nil {
		p.reused++
	}
	return b
}

// TestFetchPoolReusesBatches reads compressed batches through a pooled
// consumer, recycling each poll before the next, and checks that every
// record arrives whole and that the pool hands its buffers out again.
func TestFetchPoolReusesBatches(t *testing.T) {
	t.Run("snappy", func(t *testing.T) { testFetchPoolReuses(t, kgo.SnappyCompression()) })
	t.Run("zstd", func(t *testing.T) { testFetchPoolReuses(t, kgo.ZstdCompression()) })
	t.Run("lz4", func(t *testing.T) { testFetchPoolReuses(t, kgo.Lz4Compression()) })
}

func testFetchPoolReuses(t *testing.T, codec kgo.CompressionCodec) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const n = 3000
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":"%0200d"}`, i, i) }
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte(value(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	pool := &countingPool{FetchPool: new(FetchPool)}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<10), kgo.WithPools(pool))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for seen := 0; seen < n; {
		fs := cons.PollRecords(ctx, 100)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		for _, r := range fs.Records() {
			if got, want := string(r.Value), value(int(r.Offset)); got != want {
				t.Fatalf("record at offset %d reads %q, want %q", r.Offset, got, want)
			}
			if got, want := string(r.Key), fmt.Sprintf("k%d", r.Offset); got != want {
				t.Fatalf("record at offset %d has key %q, want %q", r.Offset, got, want)
			}
			seen++
		}
		fs.EachRecord((*kgo.Record).Recycle)
	}
	if pool.reused == 0 {
		t.Error("no decompressed batch buffer was handed out again after its records were recycled")
	}
}

// TestFetchPoolLendsBySize: a batch gets a buffer of about its own length,
// not a long one another batch left: the client clears a buffer's whole
// capacity when it comes back.
func TestFetchPoolLendsBySize(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	batch := func(codec kgo.CompressionCodecType, n int) []byte {
		raw := bytes.Repeat([]byte("x"), n)
		if codec == kgo.CodecSnappy {
			return s2.EncodeSnappy(nil, raw)
		}
		return enc.EncodeAll(raw, nil)
	}
	for _, codec := range []kgo.CompressionCodecType{kgo.CodecSnappy, kgo.CodecZstd} {
		p := new(FetchPool)
		long := make([]byte, 0, 4<<20)
		p.PutDecompressBytes(long)
		for _, n := range []int{5000, 70 << 10, 1 << 20} {
			b := p.GetDecompressBytes(batch(codec, n), codec)
			if b == nil || cap(b) < n || cap(b) > 2*max(n, minPooledBatch) {
				t.Fatalf("codec %d: a batch of %d bytes got a buffer of capacity %d", codec, n, cap(b))
			}
			p.PutDecompressBytes(b)
		}
		// The 4 MiB buffer, or a new one of its class.
		if b := p.GetDecompressBytes(batch(codec, 3<<20), codec); cap(b) != cap(long) {
			t.Fatalf("codec %d: a batch of 3 MiB got capacity %d, want %d", codec, cap(b), cap(long))
		}
		if b := p.GetDecompressBytes(batch(codec, maxPooledBatch+1), codec); b != nil {
			t.Fatalf("codec %d: a batch beyond the pool's bound got a buffer of capacity %d", codec, cap(b))
		}
	}
	// Unknown length (xerial framing, lz4, gzip): a buffer of the
	// smallest class, never a longer one the pool holds.
	p := new(FetchPool)
	p.PutDecompressBytes(make([]byte, 0, 4<<20))
	if b := p.GetDecompressBytes([]byte("?"), kgo.CodecLz4); cap(b) != minPooledBatch {
		t.Fatalf("a batch of unknown length got capacity %d, want %d", cap(b), minPooledBatch)
	}
	// What the codec grew comes back in the class it fits.
	p.PutDecompressBytes(make([]byte, 0, 300<<10))
	if b := p.GetDecompressBytes(batch(kgo.CodecSnappy, 200<<10), kgo.CodecSnappy); cap(b) < 200<<10 || cap(b) > 512<<10 {
		t.Fatalf("a batch of 200 KiB got capacity %d", cap(b))
	}
}
