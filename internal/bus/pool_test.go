package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const n = 3000
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(kgo.SnappyCompression()),
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
