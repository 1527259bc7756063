package capacity

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Write prints the plans (one column per demand) as a table, or as JSON
// with the inputs.
func Write(w io.Writer, in Inputs, plans []Plan, format string) error {
	if format == "json" {
		type demand struct {
			EventsPerSecond float64 `json:"events_per_second"`
			RetentionDays   float64 `json:"retention_days"`
		}
		type out struct {
			Demand demand `json:"demand"`
			Plan
		}
		res := struct {
			Inputs Inputs `json:"inputs"`
			Plans  []out  `json:"plans"`
		}{Inputs: in}
		for _, p := range plans {
			res.Plans = append(res.Plans, out{demand{p.Demand.EventsPerSecond, p.Demand.Retention.Hours() / 24}, p})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(plans) == 0 {
		return nil
	}
	d := plans[0].Demand
	fmt.Fprintf(w, "Inputs (measured):\n")
	for _, s := range in.Sources {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "  events per CPU-second: ingest %s, enrich %s, aggregate %s, broker and ClickHouse %s\n",
		count(in.IngestPerCore), count(in.EnrichPerCore), count(in.AggregatePerCore), count(in.StoragePerCore))
	fmt.Fprintf(w, "  bytes on disk per row: usage_events %.1f, cost_windows %.1f; other tables %.1f %% of usage_events\n",
		in.EventBytes, in.WindowBytes, 100*in.OtherBytesShare)
	stored := "stored"
	if in.KafkaCompression != "" {
		stored += " with " + in.KafkaCompression
	}
	fmt.Fprintf(w, "  Kafka bytes per record, %s (written): raw %.0f (%.0f), enriched %.0f (%.0f)\n",
		stored, in.RawStoredBytes, in.RawRecordBytes, in.EnrichedStoredBytes, in.EnrichedRecordBytes)
	fmt.Fprintf(w, "Choices: headroom %v×, %d series a minute, %v cores a stage replica (at least %d), ClickHouse %d replicas of %v cores and %v GiB, Kafka replication %d with %v GiB a broker, disks filled to %v %%, dedup %s at %v bytes an id\n\n",
		d.Headroom, d.Series, d.CoresPerReplica, d.MinReplicas, d.ClickHouseReplicas, d.ClickHouseCores, d.ClickHouseDiskGiB,
		d.KafkaReplication, d.KafkaDiskGiB, 100*d.DiskFill, d.DedupHorizon, d.DedupBytesPerID)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(name string, f func(p Plan) string) {
		cells := []string{name}
		for _, p := range plans {
			cells = append(cells, f(p))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	line("", func(p Plan) string { return count(p.Demand.EventsPerSecond) + " events/s" })
	line("retention (days)", func(p Plan) string { return num(p.Demand.Retention.Hours() / 24) })
	line("ingest replicas", func(p Plan) string { return strconv.Itoa(p.IngestReplicas) })
	line("enrich replicas", func(p Plan) string { return strconv.Itoa(p.EnrichReplicas) })
	line("aggregate replicas", func(p Plan) string { return strconv.Itoa(p.AggregateReplicas) })
	line("stage cores", func(p Plan) string { return num(p.StageCores) })
	line("partitions per topic", func(p Plan) string { return strconv.Itoa(p.Partitions) })
	line("events per day", func(p Plan) string { return count(p.EventsPerDay) })
	line("window rows per day", func(p Plan) string { return count(p.WindowRowsPerDay) })
	line("ClickHouse data, one replica", func(p Plan) string { return size(p.ClickHouseBytes) })
	line("shards (disk · CPU)", func(p Plan) string {
		return fmt.Sprintf("%d (%d · %d)", p.Shards, p.ShardsForDisk, p.ShardsForCPU)
	})
	line("ClickHouse nodes", func(p Plan) string { return strconv.Itoa(p.ClickHouseNodes) })
	line("ClickHouse data per node", func(p Plan) string { return size(p.ClickHouseDiskPerGiB * gib) })
	line("Kafka data, all replicas", func(p Plan) string { return size(p.KafkaBytes) })
	line("Kafka brokers", func(p Plan) string { return strconv.Itoa(p.KafkaBrokers) })
	line("ClickHouse per 10^9 events", func(p Plan) string { return size(p.StoragePerBillion) })
	line("Kafka per 10^9 events", func(p Plan) string { return size(p.KafkaPerBillion) })
	line("dedup ids remembered", func(p Plan) string { return count(p.DedupIDs) })
	line("dedup memory, all replicas", func(p Plan) string { return size(p.DedupBytes) })
	line("dedup_memory_mib per replica", func(p Plan) string { return strconv.FormatInt(p.DedupMemoryMiB, 10) })
	line("dedup memory per replica", func(p Plan) string { return size(p.DedupBytesPerReplica) })
	return tw.Flush()
}

// count prints a whole number with thousands separators.
func count(x float64) string {
	s := strconv.FormatFloat(x, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// size prints a byte count in binary units.
func size(x float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if x >= u.size {
			return strconv.FormatFloat(x/u.size, 'f', 1, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(x, 'f', 0, 64) + " B"
}
