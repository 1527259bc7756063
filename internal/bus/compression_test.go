package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/aivis-dev/aivis/enrich"
	"github.com/aivis-dev/aivis/internal/bus"
	"github.com/aivis-dev/aivis/internal/loadgen"
	"github.com/aivis-dev/aivis/internal/testenv"
)

// enrichedBatch returns about size bytes of enriched records as enrich
// writes them, loadgen's default traffic through the default rules.
func enrichedBatch(tb testing.TB, size int) []byte {
	tb.Helper()
	e, err := enrich.Load(enrich.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := loadgen.DefaultConfig()
	cfg.DuplicateRate, cfg.MalformedRate = 0, 0
	cfg.Start = time.Now().Add(-time.Hour)
	g := loadgen.NewGenerator(cfg)
	var batch []byte
	for len(batch) < size {
		it := g.Next()
		batch = e.Enrich(it.Event).AppendJSON(batch)
	}
	return batch
}

// BenchmarkProduceCompression compresses batches of enriched records
// with each codec of kafka.compression, as the Kafka client does, and
// reports the ratio: the CPU a producer spends against the bytes every
// broker, replica and consumer then moves and stores.
func BenchmarkProduceCompression(b *testing.B) {
	for _, size := range []int{64 << 10, 512 << 10} {
		src := enrichedBatch(b, size)
		for _, codec := range []struct {
			name  string
			codec kgo.CompressionCodec
		}{
			{"snappy", kgo.SnappyCompression()},
			{"lz4", kgo.Lz4Compression()},
			{"zstd", kgo.ZstdCompression()},
			{"gzip", kgo.GzipCompression()},
		} {
			b.Run(fmt.Sprintf("%s/%dKiB", codec.name, size>>10), func(b *testing.B) {
				c, err := kgo.DefaultCompressor(codec.codec)
				if err != nil {
					b.Fatal(err)
				}
				var dst bytes.Buffer
				var out []byte
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					dst.Reset()
					out, _ = c.Compress(&dst, src)
				}
				b.ReportMetric(float64(len(src))/float64(len(out)), "ratio")
			})
		}
	}
}

// TestDialerCompression: every producer of a Dialer writes batches in the
// configured codec, and a consumer of the same Dialer reads them back.
func TestDialerCompression(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := enrichedBatch(t, 4<<10)
	for name, want := range map[string]int16{"": 2, "snappy": 2, "lz4": 3, "zstd": 4, "gzip": 1, "none": 0} {
		topic := "t-" + name
		d := bus.Dialer{Brokers: c.ListenAddrs(), ClientID: "test", Compression: name}
		adm, err := d.Admin()
		if err != nil {
			t.Fatal(err)
		}
		_, err = adm.CreateTopic(ctx, 1, 1, nil, topic)
		adm.Close()
		if err != nil {
			t.Fatal(err)
		}
		prod, err := d.Producer("test")
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		prod.Close()
		if got := testenv.BatchCodecs(t, c.ListenAddrs(), topic); got[0] != want || len(got) != 1 {
			t.Errorf("kafka.compression %q: the batches are stored with codecs %v by partition, want %d", name, got, want)
		}

		cons, err := d.Consumer("test", "g-"+name, topic)
		if err != nil {
			t.Fatal(err)
		}
		recs := cons.PollRecords(ctx, 2).Records()
		cons.AllowRebalance() // the Dialer's consumers block rebalances, and so Close, until then
		cons.Close()
		if len(recs) == 0 || !bytes.Equal(recs[0].Value, value) {
			t.Errorf("kafka.compression %q: a consumer read %d records, the first not the value produced", name, len(recs))
		}
	}
}

func TestCodecNames(t *testing.T) {
	for _, name := range bus.Codecs {
		if _, err := bus.Codec(name); err != nil {
			t.Errorf("Codec(%q): %v", name, err)
		}
	}
	_, err := bus.Codec("zstandard")
	if err == nil || !strings.Contains(err.Error(), `"zstandard"`) || !strings.Contains(err.Error(), "snappy, lz4, zstd, gzip, none") {
		t.Errorf("Codec(zstandard): %v, want an error naming the value and the codecs", err)
	}
}
